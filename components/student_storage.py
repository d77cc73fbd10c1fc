"""How the Rasa components find, fingerprint, store and load a rasa-kd student package.

The component's `runtime` (`auto`, `int8`, `onnx` or `pytorch`; see
`rasa_kd.formats.student_package.resolve_runtime`) is resolved on the package named by
`student:` at training time, and only the files that runtime reads (student.json,
its one weights file, the tokenizer files) are copied into Rasa's model storage: a
trained model (`models/*.tar.gz`) is self-contained and carries exactly one runtime
format. Those files' content and the resolved runtime are the component's
fingerprint, so Rasa's cache retrains when either changes. The deprecated
`onnx: true` means `runtime: onnx` when `runtime` is left at `auto`.
"""
import hashlib
import shutil
from pathlib import Path
from typing import Any, Dict

from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException

from rasa_kd.errors import UserError
from rasa_kd.formats.digests import add_file
from rasa_kd.formats import student_package
from rasa_kd.students import load

PACKAGE_FOLDER = "student"
MANIFEST = student_package.MANIFEST
DEFAULT_CONFIG = {"student": None, "runtime": "auto", "onnx": False}


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


def configured_runtime(config: Dict[str, Any]) -> str:
    """`runtime`, where the deprecated `onnx: true` still means `onnx` when runtime is `auto`."""
    runtime = config.get("runtime") or "auto"
    if runtime == "auto" and config.get("onnx"):
        return student_package.deprecated_runtime_alias("the component key `onnx: true`", "onnx")
    return runtime


def deployed_runtime(path: Path, config: Dict[str, Any], component: str) -> str:
    """The runtime the config resolves to on the package at `path`, whose weights file must exist."""
    try:
        runtime = student_package.resolve_runtime(path, student_package.read_manifest(path), configured_runtime(config))
        student_package.runtime_weights(path, runtime)
    except UserError as error:
        raise InvalidConfigException(f"{component}: {error}") from error
    return runtime


def package_fingerprint(config: Dict[str, Any]) -> str:
    """A hash of the resolved runtime and the files it reads (or of the package's absence)."""
    path = Path(str(config.get("student") or "")).expanduser()
    if not path.is_dir():
        return f"missing:{path}"
    try:
        manifest = student_package.read_manifest(path)
        runtime = student_package.resolve_runtime(path, manifest, configured_runtime(config))
    except UserError as error:  # training stops on it with one line; nothing to cache
        return f"invalid:{error}"
    digest = hashlib.sha256(runtime.encode())
    for name in student_package.runtime_files(manifest, runtime):
        digest.update(name.encode())
        if (path / name).is_file():
            add_file(digest, path / name)
    return digest.hexdigest()


def load_student(folder: Path, runtime: str, component: str):
    """Load a package with rasa_kd.students; a bad package stops Rasa with one line."""
    try:
        return load(folder, runtime=runtime)
    except UserError as error:
        raise InvalidConfigException(f"{component}: {error}") from error


def load_configured_student(config: Dict[str, Any], component: str):
    """The package named in `config`, loaded with the runtime the config resolves to."""
    path = configured_package(config, component)
    return load_student(path, deployed_runtime(path, config, component), component)


def store_student(student, model_storage: ModelStorage, resource: Resource) -> None:
    """Copy into the model only the files of the loaded student's runtime."""
    with model_storage.write_to(resource) as folder:
        target = Path(folder) / PACKAGE_FOLDER
        for name in student_package.runtime_files(student.manifest, student.runtime):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(student.path / name, target / name)
        # `auto` must find the one runtime stored, whatever the package recommended
        student_package.update_manifest(target, runtime=student.runtime)


def load_stored_student(model_storage: ModelStorage, resource: Resource, component: str):
    """The student stored by `store_student`: `auto` finds its one weights file."""
    with model_storage.read_from(resource) as folder:
        return load_student(Path(folder) / PACKAGE_FOLDER, "auto", component)
