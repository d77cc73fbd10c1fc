"""Calibration: ECE, temperature scaling, the fallback threshold and the reliability diagram."""
import numpy as np
import pytest

from rasa_kd.evaluation import calibration


def overconfident_model(n=3000, classes=5, seed=0, sharpness=6.0):
    """Logits of a classifier right about 70 % of the time whose logits are `sharpness`
    times too large: calibrated at temperature `sharpness`."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, classes, n)
    calibrated = rng.normal(0, 1, (n, classes))
    calibrated[np.arange(n), gold] += 1.5
    # draw the labels from the calibrated probabilities, so T = sharpness is the true temperature
    probabilities = calibration.softmax(calibrated)
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return calibrated * sharpness, labels


def test_expected_calibration_error_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    gold = [0, 1, 0, 1]
    # bins: 0.9 -> two examples, accuracy 0.5 (|0.5-0.9| = 0.4); 0.6 -> right (0.4); 0.7 -> right (0.3)
    assert calibration.expected_calibration_error(probabilities, gold) == pytest.approx((2 * 0.4 + 0.4 + 0.3) / 4)
    assert calibration.expected_calibration_error(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)


def test_temperature_scaling_lowers_ece_and_keeps_the_argmax():
    logits, gold = overconfident_model()
    report = calibration.calibrate(logits, gold)
    assert report["temperature"] == pytest.approx(6.0, rel=0.15)
    assert report["ece_after"] < report["ece_before"] / 3 and report["ece_after"] < 0.03
    assert report["nll_after"] < report["nll_before"]
    before, after = calibration.softmax(logits), calibration.softmax(logits, report["temperature"])
    assert np.array_equal(before.argmax(axis=1), after.argmax(axis=1))


def test_underconfident_model_gets_a_temperature_below_one():
    logits, gold = overconfident_model(sharpness=0.3)
    assert calibration.fit_temperature(logits, gold) < 1


def test_fallback_threshold_reaches_the_precision():
    probabilities = np.array([[0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    gold = [0, 0, 1, 0, 1]  # right, right, wrong, right, wrong
    result = calibration.fallback_threshold(probabilities, gold, precision=0.75)
    assert result == {"target_precision": 0.75, "threshold": 0.7, "precision": 0.75, "kept": 0.8}
    assert calibration.fallback_threshold(probabilities, gold, precision=1.0)["threshold"] == 0.9
    nothing = calibration.fallback_threshold(np.array([[0.9, 0.1]]), [1], precision=0.5)
    assert nothing["threshold"] is None and nothing["kept"] == 0.0


def test_fallback_threshold_keeps_ties_together():
    probabilities = np.array([[0.8, 0.2], [0.8, 0.2], [0.6, 0.4]])
    # at 0.8 both tied messages are kept: precision 0.5, never 1.0
    assert calibration.fallback_threshold(probabilities, [0, 1, 0], precision=0.9)["threshold"] is None


def test_kept_at_counts_what_a_threshold_keeps():
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    gold = [0, 1, 1, -1]  # -1: an intent the model does not know, always wrong
    assert calibration.kept_at(probabilities, gold, 0.6) == {"kept": 0.75, "precision": 0.6667}
    assert calibration.kept_at(probabilities, gold, 0.95) == {"kept": 0.0, "precision": None}
    assert calibration.kept_at(probabilities, gold, None) == {"kept": 0.0, "precision": None}


def test_reliability_diagram_is_a_png(tmp_path):
    logits, gold = overconfident_model(n=200)
    path = calibration.reliability_diagram(calibration.softmax(logits), gold, tmp_path / "out" / "r.png", "toy")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_separation_of_unknown_intents_by_hand():
    from rasa_kd.evaluation.evaluate import separation

    known = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    unknown = np.array([[0.5, 0.5], [0.65, 0.35]])
    report = separation(known, unknown, threshold=0.62)
    # pairs ordered right: 0.5 is under all four known, 0.65 under three of four -> 7/8
    assert report["auroc"] == pytest.approx(7 / 8) and report["n"] == 2
    # 95 % of known confidences are at or above the 5 % quantile (0.615): one unknown passes it
    assert report["fpr_at_95_tpr"] == pytest.approx(0.5) and report["under_threshold"] == pytest.approx(0.5)
    assert separation(known, np.array([[0.95, 0.05]]), None)["auroc"] == 0.0  # above every known one
