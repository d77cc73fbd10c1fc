"""Scores of how known a message is (rasa_kd.students.unknown), on toy sentence vectors whose
unknown sentences are built to lie apart from every known class."""
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rasa_kd.students.unknown import (SCORES, fallback_arrays, fallback_from, fit_fallback, fit_platt, fit_scorer,
                                      log_softmax, mahalanobis_distances, operating_point)

DIM, CLASSES, PER_CLASS = 16, 4, 30


def toy_world(unknown_at: str, seed: int = 0):
    """Known classes: tight clusters around random centres; a linear head gives their logits.
    Unknown sentences lie `between` the classes (the origin) or `far` from all of them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(CLASSES, DIM))
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    known = centres[labels] + rng.normal(size=(len(labels), DIM))
    if unknown_at == "between":
        unknown = rng.normal(size=(60, DIM))
    else:
        unknown = rng.normal(scale=4.0, size=(60, DIM)) + 12.0 * np.eye(DIM)[rng.integers(DIM, size=60)]
    head = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    test_labels = np.repeat(np.arange(CLASSES), 10)
    test = centres[test_labels] + rng.normal(size=(len(test_labels), DIM))
    return {"train": (known, labels), "test": test, "unknown": unknown, "head": head, "centres": centres}


def auroc(scorer, world) -> float:
    known, unknown = world["test"], world["unknown"]
    scores = np.concatenate([scorer(known @ world["head"].T, known), scorer(unknown @ world["head"].T, unknown)])
    return roc_auc_score(np.r_[np.ones(len(known)), np.zeros(len(unknown))], scores)


@pytest.mark.parametrize("kind", SCORES)
def test_every_score_separates_unknown_sentences_between_the_classes(kind):
    world = toy_world("between")
    assert auroc(fit_scorer(kind, *world["train"]), world) >= 0.9


@pytest.mark.parametrize("kind", ["mahalanobis", "nearest"])
def test_distance_scores_also_separate_unknown_sentences_far_from_every_class(kind):
    world = toy_world("far")
    assert auroc(fit_scorer(kind, *world["train"]), world) >= 0.95


def test_mahalanobis_distances_equal_the_definition_and_survive_few_sentences():
    rng = np.random.default_rng(1)
    vectors, means = rng.normal(size=(5, 3)), rng.normal(size=(2, 3))
    precision = np.linalg.inv(np.cov(rng.normal(size=(50, 3)), rowvar=False))
    expected = np.array([[(x - m) @ precision @ (x - m) for m in means] for x in vectors])
    np.testing.assert_allclose(mahalanobis_distances(vectors, means, precision), expected, rtol=1e-9)
    few = fit_scorer("mahalanobis", rng.normal(size=(6, 40)), [0, 0, 0, 1, 1, 1])  # fewer sentences than dims
    assert np.isfinite(few(np.zeros((2, 2)), rng.normal(size=(2, 40)))).all()


def test_logit_scores_follow_the_temperature_and_fitted_ones_need_vectors():
    logits = np.array([[4.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    cold, warm = fit_scorer("max-probability", temperature=0.5), fit_scorer("max-probability", temperature=2.0)
    assert cold(logits)[0] > warm(logits)[0] and cold(logits)[1] == pytest.approx(1 / 3)
    np.testing.assert_allclose(fit_scorer("energy")(logits), np.log(np.exp(logits).sum(axis=1)))
    with pytest.raises(ValueError, match="sentence vectors"):
        fit_scorer("nearest")
    with pytest.raises(ValueError, match="needs the sentence vectors"):
        fit_scorer("nearest", np.eye(3))(logits)
    with pytest.raises(ValueError, match="unknown score"):
        fit_scorer("entropy")


def toy_fallback(kind: str, world):
    """A Fallback of `kind` fitted on the toy world's training vectors and standardised on a dev
    draw of the same classes (logits from the toy head)."""
    vectors, labels = world["train"]
    rng = np.random.default_rng(7)
    dev_labels = np.repeat(np.arange(CLASSES), 10)
    dev = world["centres"][dev_labels] + rng.normal(size=(len(dev_labels), DIM))
    return fit_fallback(kind, (vectors @ world["head"].T, vectors, labels),
                        (dev @ world["head"].T, dev, dev_labels))


@pytest.mark.parametrize("kind", ["max-probability", "nearest", "max-probability+nearest", "mahalanobis+energy"])
def test_fallback_confidence_drops_for_far_sentences_and_keeps_every_ranking(kind):
    world = toy_world("far")
    fallback = toy_fallback(kind, world)
    known, unknown = world["test"], world["unknown"]
    known_top = fallback.top_confidence(known @ world["head"].T, known)
    unknown_top = fallback.top_confidence(unknown @ world["head"].T, unknown)
    assert (unknown_top > 0).all() and (known_top < 1).all()
    assert roc_auc_score(np.r_[np.ones(len(known)), np.zeros(len(unknown))], np.r_[known_top, unknown_top]) >= (
        0.9 if kind == "max-probability" else 0.95)
    assert known_top.mean() >= 0.8 and (kind == "max-probability" or unknown_top.mean() <= 0.3)
    logits = unknown @ world["head"].T
    probabilities = np.exp(log_softmax(logits))
    confidences = fallback.confidences(probabilities, logits, unknown)
    np.testing.assert_array_equal(np.argsort(-confidences, axis=1, kind="stable"),
                                  np.argsort(-probabilities, axis=1, kind="stable"))
    np.testing.assert_allclose(confidences.max(axis=1), fallback.top_confidence(logits, unknown))


def test_platt_scaling_is_calibrated_on_what_it_was_fitted_and_rises_with_the_score():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=4000)
    correct = rng.random(4000) < 1 / (1 + np.exp(-(2.0 * scores + 1.0)))
    slope, intercept = fit_platt(scores, correct)
    assert slope == pytest.approx(2.0, abs=0.3) and intercept == pytest.approx(1.0, abs=0.2)
    assert fit_platt(scores, np.ones(4000, bool))[0] > 0  # all right: still a rising map


def test_the_recommended_threshold_is_expected_to_cost_new_messages_at_most_the_stated_accuracy():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95] * 10)
    correct = np.tile([False, True, False, True, True, True, True, True, True, True], 10)
    threshold = operating_point(scores, correct, cost=0.1)
    lost = np.mean(correct & (scores < threshold))
    # the 10th lowest correct score: a new correct sentence falls under it with probability 10/81, which
    # costs 80 % x 10/81 = 9.9 % of accuracy; the 11th (0.4, 10 % lost here) would cost new ones 10.9 %
    assert lost <= 0.1 and threshold == 0.2
    assert operating_point(scores, np.zeros(len(scores), bool)) is None
    rng = np.random.default_rng(0)  # new messages from the same distribution lose at most about `cost`
    losses = []
    for _ in range(400):
        scores, correct = rng.random(150), rng.random(150) < 0.85
        threshold, new_scores = operating_point(scores, correct, cost=0.01), rng.random(20_000)
        losses.append(np.mean(new_scores < threshold) * 0.85)
    assert np.mean(losses) <= 0.0105
    assert operating_point(np.array([0.3, 0.5, 0.9]), np.array([False, True, True]), cost=0.01) == 0.5


def test_a_stored_fallback_scores_as_the_fitted_one():
    world = toy_world("far")
    fallback = toy_fallback("mahalanobis+nearest", world)
    entry, arrays = fallback_arrays(fallback)
    stored = fallback_from(json.loads(json.dumps(entry)), arrays)
    texts = np.concatenate([world["test"], world["unknown"]])
    logits = texts @ world["head"].T
    assert stored.kind == "mahalanobis+nearest" and stored.threshold == fallback.threshold
    np.testing.assert_allclose(stored.score(logits, texts), fallback.score(logits, texts), atol=0.05)
    np.testing.assert_allclose(stored.top_confidence(logits, texts), fallback.top_confidence(logits, texts), atol=0.01)
