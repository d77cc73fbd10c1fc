"""All-or-nothing output folders: a stage writes into a temporary sibling and renames it at the end."""
import contextlib
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
    check_output_dir(out, force)
    created_root = _first_missing_ancestor(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_root is not None:
            shutil.rmtree(created_root, ignore_errors=True)
        raise
    replace_dir(tmp, out)


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
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
