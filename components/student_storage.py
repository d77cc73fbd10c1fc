"""How the Rasa components find, fingerprint, store and load a rasa-kd student package.

The package named by `student:` is copied into Rasa's model storage at training time,
so a trained model (`models/*.tar.gz`) is self-contained; its content hash is part of
the component's fingerprint, so Rasa's cache retrains when the package changes.
"""
import hashlib
import shutil
from pathlib import Path
from typing import Any, Dict

from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException

PACKAGE_FOLDER = "student"
MANIFEST = "student.json"


def configured_package(config: Dict[str, Any], component: str) -> Path:
    """The student package folder named in the component's config, checked."""
    name = config.get("student")
    if not name:
        raise InvalidConfigException(
            f"{component}: set `student:` to a rasa-kd student package folder "
            f"(made by `rasa-kd distil` or `rasa-kd pipeline`)"
        )
    path = Path(name).expanduser()
    if not (path / MANIFEST).is_file():
        raise InvalidConfigException(
            f"{component}: {path} is not a rasa-kd student package (no {MANIFEST}); "
            f"make one with `rasa-kd distil` or `rasa-kd pipeline`"
        )
    return path


def package_files(path: Path):
    return sorted(p for p in path.rglob("*") if p.is_file())


def package_fingerprint(config: Dict[str, Any]) -> str:
    """A hash of every file in the configured package (or of its absence)."""
    path = Path(str(config.get("student") or "")).expanduser()
    digest = hashlib.sha256(str(config.get("onnx", False)).encode())
    if not path.is_dir():
        return f"missing:{path}"
    for file in package_files(path):
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def store_package(path: Path, model_storage: ModelStorage, resource: Resource) -> None:
    with model_storage.write_to(resource) as folder:
        shutil.copytree(path, Path(folder) / PACKAGE_FOLDER, dirs_exist_ok=True)


def load_student(folder: Path, onnx: bool, component: str):
    """Load a package with rasa_kd.students; a bad package stops Rasa with one line."""
    from rasa_kd.errors import UserError
    from rasa_kd.students import load

    try:
        return load(folder, onnx=onnx)
    except UserError as error:
        raise InvalidConfigException(f"{component}: {error}") from error


def load_stored_student(model_storage: ModelStorage, resource: Resource, onnx: bool, component: str):
    with model_storage.read_from(resource) as folder:
        return load_student(Path(folder) / PACKAGE_FOLDER, onnx, component)
