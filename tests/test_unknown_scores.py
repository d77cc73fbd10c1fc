"""Scores of how known a message is (rasa_kd.students.unknown), on toy sentence vectors whose
unknown sentences are built to lie apart from every known class."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rasa_kd.students.unknown import SCORES, fit_scorer, mahalanobis_distances

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
    return {"train": (known, labels), "test": test, "unknown": unknown, "head": head}


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
