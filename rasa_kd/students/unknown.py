"""How "known" a message is: scores from the student's one forward pass (logits and sentence
vector) that should be high for sentences of the intents it was trained on and low for anything
else (issue 33). Every score is oriented the same way: higher = more like a known intent.

  max-probability  the top softmax probability at the student's temperature (what Rasa's
                   FallbackClassifier compares with its threshold today)
  energy           T * logsumexp(logits / T) (Liu et al. 2020): unlike the softmax it keeps how
                   large the logits are, not only how they compare
  mahalanobis      minus the smallest Mahalanobis distance of the unit-length sentence vector to
                   a class mean, with one covariance shared by the classes (Lee et al. 2018),
                   fitted on the sentence vectors of sentences with known intents (unit length:
                   a BiLSTM's max-pooled vector grows with the sentence, which the raw distance
                   mistakes for novelty; held-out-intent AUROC 0.64 raw, 0.83 unit)
  nearest          the largest cosine similarity of the sentence vector to those of the fitted
                   sentences (Sun et al. 2022: k-NN with k = 1)

The fitted scores (`fit_scorer`) keep only numpy arrays, so they can be stored next to a student
and used at parse time without scikit-learn.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

SCORES = ("max-probability", "energy", "mahalanobis", "nearest")
FITTED = ("mahalanobis", "nearest")
DEFAULT_SCORE = "max-probability+nearest"  # benchmarks/unknown_intents.py: the held-out-intent dev AUROC
UNKNOWN_SCORE_OFF = "off"  # no fallback: the confidences are the calibrated probabilities
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
            return -mahalanobis_distances(unit_rows(vectors), self.means, self.precision).min(axis=1)
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
    vectors, labels = unit_rows(vectors), np.asarray(labels)
    classes = np.unique(labels)
    means = np.stack([vectors[labels == c].mean(axis=0) for c in classes])
    centred = vectors - means[np.searchsorted(classes, labels)]
    covariance = centred.T @ centred / max(len(vectors) - len(classes), 1)
    covariance += SHRINKAGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    return Scorer(kind, temperature, means=means, precision=np.linalg.inv(covariance),
                  fitted_on={"sentences": len(vectors), "classes": len(classes)})



ACCURACY_COST = 0.01  # the recommended threshold is expected to cost new messages this much known-intent accuracy
THRESHOLD_RULE = "expected cost"  # how operating_point reads ACCURACY_COST; changing it re-fits cached Rasa models
CONFIDENCE_FLOOR = 1e-6


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(values, dtype=np.float64)))


def fit_platt(scores: np.ndarray, correct: np.ndarray, steps: int = 50) -> Tuple[float, float]:
    """(slope, intercept) of P(top intent right | score) = sigmoid(slope * score + intercept), fitted
    by Newton's method on held-out known sentences with Platt's smoothed targets (Platt 1999). One
    pseudo-sentence, wrong and less typical than every one of them, keeps both outcomes present and
    says that a message unlike every known one is not to be trusted; the slope is kept positive."""
    scores = np.append(np.asarray(scores, dtype=np.float64), np.min(scores) - 1.0)
    correct = np.append(np.asarray(correct, dtype=bool), False)
    right, wrong = correct.sum(), (~correct).sum()
    targets = np.where(correct, (right + 1.0) / (right + 2.0), 1.0 / (wrong + 2.0))
    design = np.stack([scores, np.ones_like(scores)], axis=1)
    weights = np.zeros(2)
    for _ in range(steps):
        predicted = sigmoid(design @ weights)
        gradient = design.T @ (predicted - targets)
        hessian = (design * (predicted * (1 - predicted))[:, None]).T @ design + 1e-6 * np.eye(2)
        weights -= np.linalg.solve(hessian, gradient)
    return max(float(weights[0]), 1e-3), float(weights[1])


def operating_point(scores: np.ndarray, correct: np.ndarray, cost: float = ACCURACY_COST) -> Optional[float]:
    """The highest threshold that is expected to cost new messages like these (known intents, held out)
    at most `cost` of accuracy; everything scoring below it falls back. A new correctly classified
    sentence scores under the k-th lowest of n_c correct scores with probability k / (n_c + 1) (order
    statistics), so k is the largest with (n_c / n) k / (n_c + 1) <= cost. The k-th lowest itself would
    cost exactly (k - 1) / n on these sentences, and thresholds fitted that way on 100-200 sentences cost
    twice the promise on test. At least the lowest correct score: fewer than about 1 / cost sentences
    cannot keep the promise, and it is the least costly. None: no sentence is correct."""
    correct_scores = np.sort(np.asarray(scores)[np.asarray(correct, dtype=bool)])
    if not len(correct_scores):
        return None
    n, n_correct = len(scores), len(correct_scores)
    k = max(1, int(np.floor(cost * n * (n_correct + 1) / n_correct + 1e-9)))
    return float(correct_scores[min(k, n_correct) - 1])


@dataclass
class Fallback:
    """What turns one forward pass into the confidence Rasa sees: the `scorers` (their sum, each
    standardised by `centres` and `scales`, is the message's score), the logistic map from that score
    to the probability that the top intent is right (`slope`, `intercept`, fitted on known dev
    sentences) and the threshold recommended for Rasa's FallbackClassifier on it."""

    scorers: List[Scorer]
    centres: np.ndarray
    scales: np.ndarray
    slope: float
    intercept: float
    threshold: Optional[float] = None
    cost: float = ACCURACY_COST

    @property
    def kind(self) -> str:
        return "+".join(scorer.kind for scorer in self.scorers)

    def score(self, logits: np.ndarray, vectors: Optional[np.ndarray] = None) -> np.ndarray:
        parts = np.stack([scorer(logits, vectors) for scorer in self.scorers], axis=1)
        return ((parts - self.centres) / self.scales).sum(axis=1)

    def top_confidence(self, logits: np.ndarray, vectors: Optional[np.ndarray] = None) -> np.ndarray:
        """The probability that each message's top intent is right, judged by its score (never 0, so
        that the intents scaled to it keep their order)."""
        return np.maximum(sigmoid(self.slope * self.score(logits, vectors) + self.intercept), CONFIDENCE_FLOOR)

    def confidences(self, probabilities: np.ndarray, logits: np.ndarray,
                    vectors: Optional[np.ndarray] = None) -> np.ndarray:
        """The confidences Rasa sees: every intent's probability times one factor per message, so
        that the top one is `top_confidence` and the argmax and the order among intents stay."""
        return scaled_to_top(probabilities, self.top_confidence(logits, vectors))


def scaled_to_top(probabilities: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Each row of `probabilities` times the factor that makes its largest entry `top`."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return probabilities * (np.asarray(top, dtype=np.float64) / probabilities.max(axis=1))[:, None]


def fit_fallback(kind: str, train: Tuple[np.ndarray, np.ndarray, Sequence[int]],
                 dev: Tuple[np.ndarray, np.ndarray, Sequence[int]], temperature: float = 1.0,
                 cost: float = ACCURACY_COST) -> Fallback:
    """The `kind` of score (one of SCORES, or several joined by `+`) fitted on `train` (logits, sentence
    vectors, intent ids) and standardised, mapped to a probability and thresholded on `dev` (the
    same, sentences the student never learnt from)."""
    train_logits, train_vectors, train_labels = train
    dev_logits, dev_vectors, dev_labels = dev
    scorers = [fit_scorer(part, train_vectors, train_labels, temperature) for part in kind.split("+")]
    parts = np.stack([scorer(dev_logits, dev_vectors) for scorer in scorers], axis=1)
    centres, scales = parts.mean(axis=0), np.maximum(parts.std(axis=0), 1e-12)
    correct = np.asarray(dev_logits).argmax(axis=1) == np.asarray(dev_labels)
    slope, intercept = fit_platt(((parts - centres) / scales).sum(axis=1), correct)
    fallback = Fallback(scorers, centres, scales, slope, intercept, cost=cost)
    fallback.threshold = operating_point(fallback.top_confidence(dev_logits, dev_vectors), correct, cost)
    return fallback


def fallback_arrays(fallback: Fallback) -> Tuple[Dict, Dict[str, np.ndarray]]:
    """(the manifest entry, the named arrays) that store `fallback` in a student package; reference
    vectors as float16 (half the size; cosine similarities move by about 1e-3)."""
    arrays = {"centres": fallback.centres, "scales": fallback.scales}
    for index, scorer in enumerate(fallback.scorers):
        for name in ("means", "precision", "references"):
            value = getattr(scorer, name)
            if value is not None:
                arrays[f"{index}.{name}"] = value.astype(np.float16 if name == "references" else np.float32)
    entry = {"score": fallback.kind, "temperature": fallback.scorers[0].temperature,
             "slope": fallback.slope, "intercept": fallback.intercept, "threshold": fallback.threshold,
             "cost": fallback.cost,
             "fitted_on": [scorer.fitted_on for scorer in fallback.scorers]}
    return entry, {name: np.ascontiguousarray(value if value.dtype == np.float16 else value.astype(np.float32))
                   for name, value in arrays.items()}


def fallback_from(entry: Dict, arrays: Dict[str, np.ndarray]) -> Fallback:
    """The Fallback that `fallback_arrays` stored."""
    def array(name: str) -> Optional[np.ndarray]:
        return arrays[name].astype(np.float64) if name in arrays else None

    fitted_on = entry.get("fitted_on") or []
    scorers = [Scorer(kind, entry["temperature"], array(f"{i}.means"), array(f"{i}.precision"),
                      array(f"{i}.references"), fitted_on[i] if i < len(fitted_on) else {})
               for i, kind in enumerate(entry["score"].split("+"))]
    return Fallback(scorers, array("centres"), array("scales"), entry["slope"], entry["intercept"],
                    entry.get("threshold"), entry.get("cost", ACCURACY_COST))
