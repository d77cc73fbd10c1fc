"""Outlier exposure (Hendrycks et al. 2019; issue 33): generic sentences from other domains in
the transfer set, trained toward a flat distribution, so that a student learns to be unsure about
messages none of its intents covers (it otherwise sees only its own domain and is as sure of
"what's the capital of Mongolia" as of its training sentences).

`rasa-kd augment --outliers` adds them (source `outlier`, no parent, no intent): `auto` (the
default) takes the packaged English corpus, outliers.txt (about 3,000 questions and requests on
everyday topics, written by SmolLM2-135M-Instruct with scripts/outlier_corpus.py), for English
data and none otherwise; a text file gives one sentence per line; `none` adds nothing.
`rasa-kd label` then replaces the teacher's logits of each outlier row by their mean (a flat
distribution) unless the teacher's sentence vector of it is as close to a training sentence as the
training sentences are to each other (`near_originals`): a generic sentence that happens to be
one of the assistant's intents ("what's your name?") keeps the teacher's labels, like any
augmented sentence.
"""
import hashlib
import random
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from rasa_kd.errors import UserError

AUTO, NONE = "auto", "none"
CORPUS = Path(__file__).with_name("outliers.txt")
SHARE = 0.1  # outlier sentences per transfer-set sentence (at most the corpus)
NEAR_QUANTILE = 0.05  # an outlier as close to the training sentences as this share of them is to the rest: near
REFERENCE_MOST = 4000  # training sentences the nearness is measured against (a seeded sample beyond it)


def corpus_file(spec: str, english: bool) -> Optional[Path]:
    """The file `--outliers SPEC` reads, None for none."""
    if spec == NONE or (spec == AUTO and not english):
        return None
    path = CORPUS if spec == AUTO else Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"--outliers {spec}: no such file (give a text file with one sentence per line, "
                        f"{AUTO} or {NONE})")
    return path


def corpus_digest() -> str:
    """The packaged corpus's content hash (Rasa's cache must not reuse a student made with another)."""
    return hashlib.sha256(CORPUS.read_bytes()).hexdigest()[:16] if CORPUS.is_file() else ""


def outlier_sentences(path: Path, seed: int) -> List[str]:
    """The file's sentences in a seeded order (blank lines skipped)."""
    sentences = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(sentences)
    return sentences


def outlier_count(transfer_size: int) -> int:
    return round(SHARE * transfer_size)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def nearest_cosines(queries: np.ndarray, reference: np.ndarray, leave_out_self: bool = False,
                    chunk: int = 1024) -> np.ndarray:
    """Each query row's highest cosine to a reference row (`leave_out_self`: queries are the
    reference, a row's own similarity left out)."""
    queries, reference = _unit(queries), _unit(reference)
    best = np.empty(len(queries), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        similarity = queries[start:start + chunk] @ reference.T
        if leave_out_self:
            rows = np.arange(similarity.shape[0])
            similarity[rows, rows + start] = -np.inf
        best[start:start + chunk] = similarity.max(axis=1)
    return best


def near_originals(original_vectors: np.ndarray, outlier_vectors: np.ndarray,
                   seed: int = 0) -> Tuple[np.ndarray, float]:
    """Which outlier rows are near the training sentences (teacher sentence vectors): their nearest
    cosine to one reaches the NEAR_QUANTILE of the training sentences' own nearest cosines (each to
    the others). Returns (mask, that cosine)."""
    reference = original_vectors
    if len(reference) > REFERENCE_MOST:
        reference = reference[np.random.default_rng(seed).choice(len(reference), REFERENCE_MOST, replace=False)]
    if len(reference) < 2:
        return np.zeros(len(outlier_vectors), dtype=bool), float("inf")
    cut = float(np.quantile(nearest_cosines(reference, reference, leave_out_self=True), NEAR_QUANTILE))
    return nearest_cosines(outlier_vectors, original_vectors) >= cut, cut


def flattened(logits: np.ndarray) -> np.ndarray:
    """Each row's logits replaced by their mean: a flat distribution at the same logit level."""
    return np.repeat(logits.mean(axis=1, keepdims=True), logits.shape[1], axis=1).astype(logits.dtype)
