"""Confidence calibration: how far a model's top confidence is from its accuracy, and the fix.

* `expected_calibration_error`: ECE over equal-width confidence bins (Guo et al. 2017,
  15 bins): sum over bins of (share of examples) x |accuracy - mean confidence|.
* `fit_temperature`: temperature scaling. One scalar T > 0 divides the logits before
  the softmax; T is the one minimising the negative log-likelihood of the gold labels
  (on dev). Dividing by a positive number keeps every ranking, so predictions do not
  change, only confidences.
* `fallback_threshold`: the confidence threshold for Rasa's `FallbackClassifier` at
  which the messages kept (top confidence >= threshold) reach a chosen precision.
* `reliability_diagram`: accuracy against confidence per bin, as a PNG.

`rasa-kd distil` calibrates every student it makes on its dev set. `rasa-kd calibrate`
does the same for an existing package (e.g. one made before calibration existed, or to
fit on another dev file): it writes `calibration` into the package's student.json.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize_scalar

from rasa_kd.errors import UserError
from rasa_kd.formats import student_package
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.student_package import RUNTIMES
from rasa_kd.options import option
from rasa_kd.students import load
from rasa_kd.students.runtime import softmax as runtime_softmax

logger = logging.getLogger(__name__)

BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The students' softmax, in float64, of logits / temperature."""
    return runtime_softmax(np.asarray(logits, dtype=np.float64) / temperature)


def top_and_correct(probabilities: np.ndarray, gold: Sequence[int]):
    """(top confidence, whether the top label is gold) per row."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(gold)


def bin_table(confidences: np.ndarray, correct: np.ndarray, bins: int = BINS):
    """Per bin (upper edges (i+1)/bins, the first bin including 0): (count, mean confidence, accuracy)."""
    index = np.clip(np.ceil(confidences * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    confidence_sums = np.bincount(index, weights=confidences, minlength=bins)
    correct_sums = np.bincount(index, weights=correct.astype(float), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts, confidence_sums / counts, correct_sums / counts


def expected_calibration_error(probabilities: np.ndarray, gold: Sequence[int], bins: int = BINS) -> float:
    if not len(probabilities):
        return 0.0
    confidences, correct = top_and_correct(probabilities, gold)
    counts, mean_confidence, accuracy = bin_table(confidences, correct, bins)
    used = counts > 0
    return float(np.sum(counts[used] / len(confidences) * np.abs(accuracy[used] - mean_confidence[used])))


def negative_log_likelihood(logits: np.ndarray, gold: Sequence[int], temperature: float = 1.0) -> float:
    probabilities = softmax(logits, temperature)
    picked = probabilities[np.arange(len(probabilities)), np.asarray(gold)]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


def fit_temperature(logits: np.ndarray, gold: Sequence[int]) -> float:
    """The T in TEMPERATURE_RANGE minimising the NLL of `gold` under softmax(logits / T)
    (a bounded 1-D search on log T; the NLL is convex in 1/T)."""
    logits = np.asarray(logits, dtype=np.float64)
    if not len(logits):
        return 1.0
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    found = minimize_scalar(lambda log_t: negative_log_likelihood(logits, gold, float(np.exp(log_t))),
                            bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def calibrate(logits: np.ndarray, gold: Sequence[int]) -> Dict[str, float]:
    """Temperature and the before/after NLL and ECE on the data it was fitted on."""
    temperature = fit_temperature(logits, gold)
    return {"temperature": round(temperature, 4), "n": int(len(gold)),
            "nll_before": round(negative_log_likelihood(logits, gold), 4),
            "nll_after": round(negative_log_likelihood(logits, gold, temperature), 4),
            "ece_before": round(expected_calibration_error(softmax(logits), gold), 4),
            "ece_after": round(expected_calibration_error(softmax(logits, temperature), gold), 4)}


def fallback_threshold(probabilities: np.ndarray, gold: Sequence[int], precision: float) -> Dict[str, Optional[float]]:
    """The lowest threshold t (a confidence seen in the data) at which the messages with
    top confidence >= t are predicted with at least `precision`, and the share kept.
    None when no threshold reaches it."""
    confidences, correct = top_and_correct(probabilities, gold)
    order = np.argsort(-confidences, kind="stable")
    kept_precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # a threshold keeps every message at or above it: only the last of a run of equal confidences counts
    last_of_run = np.append(confidences[order][1:] != confidences[order][:-1], True)
    reaching = np.flatnonzero((kept_precision >= precision) & last_of_run)
    result = {"target_precision": precision, "threshold": None, "precision": None, "kept": 0.0}
    if len(reaching):
        last = reaching[-1]
        result.update(threshold=round(float(confidences[order][last]), 4),
                      precision=round(float(kept_precision[last]), 4), kept=round((last + 1) / len(order), 4))
    return result


def kept_at(probabilities: np.ndarray, gold: Sequence[int], threshold: Optional[float]) -> Dict[str, Optional[float]]:
    """Share of messages a threshold keeps (top confidence >= it; None keeps none) and the
    precision of what it keeps (None when it keeps none)."""
    confidences, correct = top_and_correct(probabilities, gold)
    kept = confidences >= (np.inf if threshold is None else threshold)
    return {"kept": round(float(kept.mean()), 4),
            "precision": round(float(correct[kept].mean()), 4) if kept.any() else None}


def reliability_diagram(probabilities: np.ndarray, gold: Sequence[int], path: Path, title: str,
                        bins: int = BINS) -> Path:
    """Accuracy and mean confidence per confidence bin, with the diagonal, saved as a PNG."""
    matplotlib.use("Agg")

    confidences, correct = top_and_correct(probabilities, gold)
    counts, _, accuracy = bin_table(confidences, correct, bins)
    edges = np.linspace(0, 1, bins + 1)
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    axis.bar(edges[:-1], np.nan_to_num(accuracy), width=1 / bins, align="edge", edgecolor="black",
             label="accuracy")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
             title=f"{title}\nECE {expected_calibration_error(probabilities, gold, bins):.3f}, n={len(gold)}")
    axis.legend(loc="upper left")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


# ---------------------------------------------------------------- CLI


def calibrate_package(path: Path, data: Path, runtime: str = "auto") -> Dict[str, float]:
    """Fit the temperature of the package at `path` on the NLU file `data` with the given
    runtime's logits, and record it in student.json; returns the record."""
    student = load(path, runtime=runtime)
    examples = [e for e in read_examples(data) if e.intent in student.labels]
    if not examples:
        raise UserError(f"{data}: no examples of the student's intents to calibrate on")
    logits = student.logits([e.text for e in examples])
    record = {**calibrate(logits, [student.labels.index(e.intent) for e in examples]),
              "fitted_on": str(data), "runtime": student.runtime}
    student_package.update_manifest(path, calibration=record)
    return record


@dataclass
class CalibrateOptions:
    """`rasa-kd calibrate`'s options; see the module docstring."""

    model: Path = option(help="student package folder (updated in place)")
    data: Path = option(help="Rasa NLU YAML dev file (not the test file)")
    runtime: str = option("auto", "whose logits to fit on (auto: the deployed runtime)", choices=RUNTIMES)


def calibrate_from_options(options: CalibrateOptions) -> Dict:
    record = calibrate_package(options.model, options.data, options.runtime)
    logger.info(f"{options.model}: temperature {record['temperature']:.3f} on {record['n']} examples; NLL "
                f"{record['nll_before']:.4f} -> {record['nll_after']:.4f}, ECE {record['ece_before']:.4f} -> "
                f"{record['ece_after']:.4f}")
    return record
