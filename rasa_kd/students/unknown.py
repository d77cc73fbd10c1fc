"""How "known" a message is: scores from the student's one forward pass (logits and sentence
vector) that should be high for sentences of the intents it was trained on and low for anything
else (issue 33). Every score is oriented the same way: higher = more like a known intent.

  max-probability  the top softmax probability at the student's temperature (what Rasa's
                   FallbackClassifier compares with its threshold today)
  energy           T * logsumexp(logits / T) (Liu et al. 2020): unlike the softmax it keeps how
                   large the logits are, not only how they compare
  mahalanobis      minus the smallest Mahalanobis distance of the sentence vector to a class
                   mean, with one covariance shared by the classes (Lee et al. 2018), fitted on
                   the sentence vectors of sentences with known intents
  nearest          the largest cosine similarity of the sentence vector to those of the fitted
                   sentences (Sun et al. 2022: k-NN with k = 1)

The fitted scores (`fit_scorer`) keep only numpy arrays, so they can be stored next to a student
and used at parse time without scikit-learn.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np

SCORES = ("max-probability", "energy", "mahalanobis", "nearest")
FITTED = ("mahalanobis", "nearest")
SHRINKAGE = 0.1  # share of the covariance's mean variance added to its diagonal: a few dozen sentences per
# intent give a singular covariance in hundreds of dimensions


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    return scaled - logsumexp(scaled)[:, None]


def logsumexp(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=1)
    return top + np.log(np.exp(values - top[:, None]).sum(axis=1))


def max_probability(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(logits, temperature).max(axis=1))


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return temperature * logsumexp(np.asarray(logits, dtype=np.float64) / temperature)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass
class Scorer:
    """One score (`kind`, see SCORES) with what it was fitted on: `means` [classes, d] and `precision`
    [d, d] (mahalanobis), `references` [n, d] unit rows (nearest)."""

    kind: str
    temperature: float = 1.0
    means: Optional[np.ndarray] = None
    precision: Optional[np.ndarray] = None
    references: Optional[np.ndarray] = None
    fitted_on: Dict[str, int] = field(default_factory=dict)

    def __call__(self, logits: np.ndarray, vectors: Optional[np.ndarray] = None) -> np.ndarray:
        """The score of each row (higher = more known); `vectors`: the sentence vectors, needed by
        the fitted scores."""
        if self.kind == "max-probability":
            return max_probability(logits, self.temperature)
        if self.kind == "energy":
            return energy(logits, self.temperature)
        if vectors is None:
            raise ValueError(f"the {self.kind} score needs the sentence vectors")
        vectors = np.asarray(vectors, dtype=np.float64)
        if self.kind == "mahalanobis":
            return -mahalanobis_distances(vectors, self.means, self.precision).min(axis=1)
        return (unit_rows(vectors) @ self.references.T).max(axis=1)


def mahalanobis_distances(vectors: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared distances [n, classes]: (x - m)^T P (x - m) for every row x and class mean m."""
    projected = vectors @ precision
    return (np.einsum("nd,nd->n", projected, vectors)[:, None] - 2 * projected @ means.T
            + np.einsum("cd,dk,ck->c", means, precision, means)[None, :])


def fit_scorer(kind: str, vectors: Optional[np.ndarray] = None, labels: Optional[Sequence[int]] = None,
               temperature: float = 1.0) -> Scorer:
    """The score `kind`; the fitted ones learn from `vectors` [n, d] of sentences whose known intent
    ids are `labels` (mahalanobis; nearest needs no labels)."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r} (choose from {', '.join(SCORES)})")
    if kind not in FITTED:
        return Scorer(kind, temperature)
    if vectors is None or len(vectors) == 0:
        raise ValueError(f"the {kind} score is fitted on sentence vectors; none given")
    vectors = np.asarray(vectors, dtype=np.float64)
    if kind == "nearest":
        return Scorer(kind, temperature, references=unit_rows(vectors), fitted_on={"sentences": len(vectors)})
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = np.stack([vectors[labels == c].mean(axis=0) for c in classes])
    centred = vectors - means[np.searchsorted(classes, labels)]
    covariance = centred.T @ centred / max(len(vectors) - len(classes), 1)
    covariance += SHRINKAGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    return Scorer(kind, temperature, means=means, precision=np.linalg.inv(covariance),
                  fitted_on={"sentences": len(vectors), "classes": len(classes)})
