"""The student package: what `rasa-kd distil` writes and `rasa_kd.students.load` reads.

A student package is a folder:

    student.json        manifest (below)
    model.safetensors   the weights (safetensors; no pickle anywhere in a package)
    vocab.txt           words students: one word per line, line number = id,
                        lines 0 and 1 are [PAD] and [UNK]
    tokenizer.json ...  wordpiece students: the teacher's Hugging Face tokenizer files
                        (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
                        vocab.txt); inference reads tokenizer.json with `tokenizers`
    model.onnx          optional, from `rasa-kd export --onnx` (inputs input_ids and
                        attention_mask, int64 [batch, length]; outputs logits,
                        sentence, tokens); model.int8.onnx from `--quantize`
    export.json         optional, what `rasa-kd export` wrote and checked
    fallback.safetensors
                        optional, from the fallback stage (`rasa-kd fallback`): the fitted
                        unknown-intent score (rasa_kd.students.unknown), described under
                        `fallback` in student.json
    training_sentences.sha1
                        SHA-1 prefixes of the training sentences the student was
                        distilled from (normalised as the transfer set compares
                        sentences), one per line: lets the Rasa components warn when
                        a package has seen sentences outside the data it is tested
                        with (cross-validation); not copied into Rasa models
    metrics-*.json      optional, from `rasa-kd evaluate`

student.json (JSON object, UTF-8):

    format          "rasa-kd-student"
    format_version  1, or 2 with entity tags (a reader refuses packages with a newer version)
    architecture    "bilstm" or "bert"
    config          the architecture's hyperparameters (enough to rebuild the model:
                    sizes, embedding mode, pooling, vocab_size, n_labels, ...)
    labels          label names in the order of the model's outputs
    tags            optional: entity tag names (BIO, `rasa_kd.nlu_data.entity_tags`) in the
                    order of the token head's outputs (config n_tags)
    tokenizer       {"kind": "words" | "wordpieces", "max_length": int, "vocab_size": int,
                     "file": "vocab.txt" | "tokenizer.json", ...}
    teacher         {"path", "name", "model_type", "fingerprint"}: the teacher that
                    labelled the transfer set (not needed at load time)
    recipe          how it was trained: transfer set, sizes, loss, temperature,
                    hard weight, epochs, batch size, learning rate, best epoch, ...
    metrics         {"dev": {...}, "test": {...}}: accuracy, micro_f1, macro_f1, mcc, n
    parameters      {"embedding": int, "other": int, "total": int}
    outputs         {"sentence_dim": int, "token_dim": int}
    runtime         optional, set by `rasa-kd export`: the runtime to deploy, "int8"
                    (model.int8.onnx), "onnx" (model.onnx) or "pytorch"
                    (model.safetensors), with `runtime_reason`; `load(path)` and the
                    Rasa components use it (runtime "auto")
    fallback        optional, set by the fallback stage: {"score", "temperature", "threshold",
                    "typical_share", "cost", "fitted_on"}: how the runtime turns a message's
                    unknown-intent score into the confidence Rasa sees, and the
                    FallbackClassifier threshold recommended for it (docs/user-guide.md)
    created         creation time, ISO 8601 UTC
    rasa_kd_version the rasa-kd version that wrote it

`load(path)` returns a `Student` (see `rasa_kd.students.runtime`) with `labels`,
`predict(texts)` (probabilities [n, n_labels]), `encode(texts)` (sentence vectors
[n, d]) and `encode_tokens(text)` (token vectors [n_tokens, d] and their
`(start, end)` character offsets into `text`). A missing, corrupt or newer package
raises `rasa_kd.errors.UserError` with one line naming the problem.
"""
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

from rasa_kd import __version__
from rasa_kd.errors import UserError
from rasa_kd.formats.outputs import atomic_file
from rasa_kd.formats.transfer_set import normalised_key
from rasa_kd.students.config import ARCHITECTURES
from rasa_kd.students.tokenizers import describe, save_hf_tokenizer_files

logger = logging.getLogger(__name__)

FORMAT = "rasa-kd-student"
FORMAT_VERSION = 2
INTENT_ONLY_VERSION = 1  # what a package without entity tags is written as: every reader since 1 reads it
MANIFEST = "student.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
# runtime name -> the one weights file it loads
RUNTIME_FILES = {"int8": ONNX_INT8, "onnx": ONNX, "pytorch": WEIGHTS}
RUNTIMES = ("auto", *RUNTIME_FILES)
TRAINING_HASHES = "training_sentences.sha1"
FALLBACK = "fallback.safetensors"
REQUIRED_KEYS = ("architecture", "config", "labels", "tokenizer")


def read_manifest(path) -> Dict:
    """student.json of the package at `path`, checked for format, version and required keys."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise UserError(f"{path}: student package not found")
    if not manifest_path.is_file():
        raise UserError(f"{path}: not a rasa-kd student package (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{manifest_path}: corrupt student manifest ({type(error).__name__}: {str(error)[:80]})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{manifest_path}: not a rasa-kd student manifest (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise UserError(f"{manifest_path}: corrupt student manifest (no integer format_version)")
    if version > FORMAT_VERSION:
        raise UserError(f"{manifest_path}: package format version {version} is newer than this rasa-kd reads "
                        f"({FORMAT_VERSION}); upgrade rasa-kd")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise UserError(f"{manifest_path}: corrupt student manifest (missing {', '.join(missing)})")
    if manifest["architecture"] not in ARCHITECTURES:
        raise UserError(f"{manifest_path}: unknown architecture {manifest['architecture']!r}")
    labels = manifest["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{manifest_path}: corrupt student manifest (labels is not a list of names)")
    config = manifest["config"]
    if not isinstance(config, dict) or config.get("n_labels") != len(labels):
        outputs = config.get("n_labels") if isinstance(config, dict) else None
        raise UserError(f"{manifest_path}: names {len(labels)} labels but the model has {outputs} outputs")
    if len(manifest.get("tags") or []) != config.get("n_tags", 0):
        raise UserError(f"{manifest_path}: names {len(manifest.get('tags') or [])} entity tags but the model has "
                        f"{config.get('n_tags', 0)} tag outputs")
    return manifest


def check_runtime(runtime: str) -> str:
    """The one validation of a runtime name (a UserError line naming the choices)."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r} (choose from {', '.join(RUNTIMES)})")
    return runtime


def resolve_runtime(path, manifest: Dict, runtime: str = "auto") -> str:
    """The runtime `runtime` means for this package: `auto` is the one student.json
    recommends (set by `rasa-kd export`) when its file exists, else ONNX when
    model.onnx exists, else PyTorch."""
    check_runtime(runtime)
    if runtime != "auto":
        return runtime
    path = Path(path)
    recommended = manifest.get("runtime")
    if recommended in RUNTIME_FILES and (path / RUNTIME_FILES[recommended]).is_file():
        return recommended
    return "onnx" if (path / ONNX).is_file() else "pytorch"


def runtime_weights(path, runtime: str) -> Path:
    """The weights file of a resolved runtime; one UserError line naming the fix when it is missing
    (the library, `rasa-kd evaluate` and the Rasa components all stop on it the same way)."""
    weights = Path(path) / RUNTIME_FILES[runtime]
    if not weights.is_file():
        fix = ("use the complete package folder that `rasa-kd distil` wrote" if runtime == "pytorch" else
               f"run `rasa-kd export --model {path} {'--quantize' if runtime == 'int8' else '--onnx'}`")
        raise UserError(f"{weights}: not found ({fix})")
    return weights


_DEPRECATIONS_SAID = set()


def deprecated_runtime_alias(alias: str, runtime: str) -> str:
    """`runtime` for a deprecated spelling of it (`onnx: true`, `--int8`, `quantized=True`),
    logged once per spelling and process."""
    if alias not in _DEPRECATIONS_SAID:
        _DEPRECATIONS_SAID.add(alias)
        logger.warning(f"{alias} is deprecated: use runtime {runtime!r}")
    return runtime


def runtime_files(manifest: Dict, runtime: str) -> List[str]:
    """The files a reader of `runtime` needs (never another runtime's weights)."""
    names = [MANIFEST, RUNTIME_FILES[runtime], *manifest["tokenizer"].get("files", [])]
    if manifest.get("fallback"):
        names.append(FALLBACK)
    return list(dict.fromkeys(names))


def write_fallback(folder, fallback) -> Dict:
    """Store an unknown-intent `Fallback` (rasa_kd.students.unknown) in the package: its arrays in
    fallback.safetensors, the rest under `fallback` in student.json."""
    from safetensors.numpy import save_file

    from rasa_kd.students.unknown import fallback_arrays

    entry, arrays = fallback_arrays(fallback)
    with atomic_file(Path(folder) / FALLBACK) as tmp:
        save_file(arrays, str(tmp))
    return update_manifest(folder, fallback=entry)


def read_fallback(folder, manifest: Dict):
    """The package's `Fallback`, or None when it has none; a missing or corrupt file is one UserError line."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from rasa_kd.students.unknown import fallback_from

    if not manifest.get("fallback"):
        return None
    path = Path(folder) / FALLBACK
    try:
        return fallback_from(manifest["fallback"], load_file(str(path)))
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise UserError(f"{path}: unreadable unknown-intent fallback ({str(error).splitlines()[0][:100]})") from error


def sentence_hash(text: str) -> str:
    return hashlib.sha1(normalised_key(text).encode("utf-8")).hexdigest()[:16]


def write_training_hashes(folder, texts) -> None:
    hashes = sorted({sentence_hash(text) for text in texts})
    (Path(folder) / TRAINING_HASHES).write_text("".join(f"{h}\n" for h in hashes), encoding="utf-8")


def read_training_hashes(path) -> set:
    file = Path(path) / TRAINING_HASHES
    return set(file.read_text(encoding="utf-8").split()) if file.is_file() else set()


def build_model(manifest: Dict, **init):
    """An untrained torch model of the manifest's architecture and config."""
    # torch only here: a package served by onnxruntime (int8) never imports it
    if manifest["architecture"] == "bilstm":
        from rasa_kd.students.bilstm import BiLSTMStudent

        return BiLSTMStudent(manifest["config"], **init)
    from rasa_kd.students.small_bert import SmallBertStudent

    return SmallBertStudent(manifest["config"])


def load_weights(model, path: Path) -> None:
    """Load model.safetensors into `model`; any mismatch or corruption is one UserError line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{weights}: model weights not found")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise UserError(f"{weights}: corrupt weights file ({str(error).splitlines()[0][:100]})") from error
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:160]
        raise UserError(f"{weights}: weights do not match student.json ({detail})") from error


def count_parameters(model) -> Dict[str, int]:
    """Trainable-or-not parameter counts, split into embeddings and the rest."""
    embedding = other = 0
    for name, parameter in model.named_parameters():
        if model.is_embedding_parameter(name):
            embedding += parameter.numel()
        else:
            other += parameter.numel()
    return {"embedding": embedding, "other": other, "total": embedding + other}


def write_json(obj, path: Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def update_manifest(path, **entries) -> Dict:
    """Set top-level entries of a package's student.json, replacing the file atomically."""
    manifest = read_manifest(path)
    manifest.update(entries)
    with atomic_file(Path(path) / MANIFEST) as tmp:
        write_json(manifest, tmp)
    return manifest


def save_package(folder, model, tokenizer, labels: List[str], *, teacher: Optional[Dict] = None,
                 recipe: Optional[Dict] = None, metrics: Optional[Dict] = None, hf_tokenizer=None,
                 tags: Optional[List[str]] = None) -> Dict:
    """Write a complete package into `folder` (the caller makes the folder atomic); returns the manifest."""
    from safetensors.torch import save_file


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    files = save_hf_tokenizer_files(hf_tokenizer, folder) if hf_tokenizer is not None else []
    files = sorted(set(files) | set(tokenizer.save(folder)))
    token_dim = model.student_config.sentence_dim
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if tags else INTENT_ONLY_VERSION,
        "architecture": model.architecture,
        "config": model.student_config.as_dict(),
        "labels": list(labels),
        **({"tags": list(tags)} if tags else {}),
        "tokenizer": {**describe(tokenizer), "files": files},
        "teacher": teacher or {},
        "recipe": recipe or {},
        "metrics": metrics or {},
        "parameters": count_parameters(model),
        "outputs": {"sentence_dim": token_dim, "token_dim": token_dim},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rasa_kd_version": __version__,
    }
    write_json(manifest, folder / MANIFEST)
    return manifest
