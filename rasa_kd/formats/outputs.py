"""All-or-nothing output folders: a stage writes into a temporary sibling and renames it at the end."""
import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from rasa_kd.errors import UserError


def _first_missing_ancestor(path: Path) -> Optional[Path]:
    missing = None
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing = parent
    return missing


def check_output_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: output path exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out}: output folder already has content (use --force to replace it)")


@contextlib.contextmanager
def atomic_output_dir(out, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes `out` only when the block succeeds.

    On any failure the temporary folder (and any parent folders this call created)
    is removed, so a failed run leaves nothing behind. An existing `out` is
    replaced only with `force`, and only after the new content is complete.
    """
    out = Path(out)
    recover_interrupted(out)
    check_output_dir(out, force)
    created_root = _first_missing_ancestor(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(out), dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_root is not None:
            shutil.rmtree(created_root, ignore_errors=True)
        raise
    replace_dir(tmp, out)


@contextlib.contextmanager
def atomic_file(target) -> Iterator[Path]:
    """Yield a temporary path next to `target`, renamed to `target` when the block completes
    and removed when it fails, so `target` is never half-written."""
    target = Path(target)
    recover_interrupted(target)
    handle, name = tempfile.mkstemp(prefix=temporary_prefix(target), suffix=target.suffix, dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        normal_permissions(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def temporary_prefix(target: Path) -> str:
    """Hidden, and naming the writing process, so a later run can tell a killed run's leftovers."""
    return f".{target.name}.tmp-{os.getpid()}-"


def set_aside_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.old-{os.getpid()}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(target: Path) -> None:
    """Clean up after a run that was killed while writing `target`: its temporary copies
    are removed, and a previous `target` it had set aside but not yet replaced is put back."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*-*"):
        kind, _, rest = leftover.name[len(target.name) + 2:].partition("-")
        pid = rest.split("-", 1)[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or process_alive(int(pid)):
            continue
        if kind == "old" and not target.exists():
            os.replace(leftover, target)
        elif leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_permissions(path: Path) -> None:
    """The mode a normally created file/folder would get under the umask: mkstemp/mkdtemp
    make 0600/0700, which a server running as another user could not read."""
    path = Path(path)
    base = 0o777 if path.is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


def replace_dir(new: Path, out: Path) -> None:
    """Move `new` to `out`; an old `out` is set aside first and deleted last."""
    normal_permissions(new)
    old = None
    if out.exists():
        old = set_aside_name(out)
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
