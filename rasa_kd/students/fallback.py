"""`rasa-kd fallback`: teach a student package to say when a message is none of its intents.

From one forward pass per sentence the student gives logits and a sentence vector. This stage
fits an unknown-intent score on them (`--score`, rasa_kd/students/unknown.py):

  max-probability  the top calibrated probability (what Rasa's FallbackClassifier reads today)
  energy           the log-sum-exp of the logits
  mahalanobis      closeness of the sentence vector to the nearest intent's mean (shared covariance)
  nearest          the largest cosine similarity to a training sentence's vector
  a+b              the sum of several, each standardised on --dev

The distance scores are fitted on the sentences of --train (the student's training data). On
--dev (known-intent sentences the student never learnt from, e.g. the dev share `rasa-kd
pipeline` held out) each part is standardised and the sum is mapped to the probability that the
top intent is right (logistic, Platt scaling). At parse time the Rasa components scale every
intent's confidence by one factor per message so that the top one is that probability: the top
intent and the order of the ranking stay, and a message unlike the known intents loses
confidence, so Rasa's FallbackClassifier sends it to `nlu_fallback`.

The recommended FallbackClassifier threshold is the highest one expected to cost new messages
like --dev's at most --cost of known-intent accuracy (rasa_kd.students.unknown.operating_point);
the stage logs it. Everything is stored in the package:
fallback.safetensors and `fallback` in student.json (rasa_kd/formats/student_package.py).
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from rasa_kd.errors import UserError
from rasa_kd.formats import student_package
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.options import option
from rasa_kd.students import load
from rasa_kd.students.unknown import ACCURACY_COST, DEFAULT_SCORE, SCORES, fit_fallback

logger = logging.getLogger(__name__)


@dataclass
class FallbackOptions:
    model: Path = option(help="student package folder (from `rasa-kd distil` or `rasa-kd export`)")
    train: Path = option(help="NLU file the student was distilled from: the distance scores compare with its "
                              "sentences")
    dev: Path = option(help="NLU file of known-intent sentences the student never learnt from (the dev share): "
                            "standardises the score and fits the recommended threshold")
    score: str = option(DEFAULT_SCORE, f"unknown-intent score: {', '.join(SCORES)}, or several joined by +")
    cost: float = option(ACCURACY_COST, "the recommended threshold is expected to cost new messages like --dev's "
                                        "at most this share of known-intent accuracy")


def check_score(score: str) -> str:
    wrong = [part for part in score.split("+") if part not in SCORES]
    if wrong or not score:
        raise UserError(f"unknown-intent score {score!r}: choose from {', '.join(SCORES)} (several joined by +)")
    return score


def labelled_outputs(student, path: Path) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """(logits, sentence vectors, intent ids) of an NLU file's sentences, from the deployed runtime
    as Rasa parses them."""
    examples = read_examples(path)
    index = {label: i for i, label in enumerate(student.labels)}
    unknown = sorted({e.intent for e in examples} - set(index))
    if unknown:
        raise UserError(f"{path}: intents the student does not know: {', '.join(unknown[:10])}")
    if not examples:
        raise UserError(f"{path}: no examples")
    logits, vectors = student.outputs_as_parsed([e.text for e in examples])
    return logits, vectors, [index[e.intent] for e in examples]


def fallback_from_options(options: FallbackOptions) -> Dict:
    """Fit the fallback, store it in the package; returns student.json's `fallback` entry."""
    score = check_score(options.score)
    if not 0.0 <= options.cost < 1.0:
        raise UserError(f"--cost {options.cost}: a share of accuracy in [0, 1)")
    student = load(options.model, runtime="auto")
    train, dev = labelled_outputs(student, options.train), labelled_outputs(student, options.dev)
    fallback = fit_fallback(score, train, dev, student.temperature, options.cost)
    entry = student_package.write_fallback(options.model, fallback)["fallback"]
    threshold = "none (no dev sentence is right)" if fallback.threshold is None else f"{fallback.threshold:.2f}"
    logger.info(f"unknown intents: {score} score; recommended FallbackClassifier threshold {threshold} "
                f"(expected to cost at most {options.cost:.0%} of known-intent accuracy; fitted on "
                f"{Path(options.dev).name})")
    return entry
