"""Classification scores, all from scikit-learn, shared by every stage that evaluates."""
from typing import Dict, Sequence


def classification_scores(gold: Sequence[str], predicted: Sequence[str]) -> Dict[str, float]:
    """accuracy, micro-F1, macro-F1 (over gold and predicted labels) and Matthews correlation, as floats."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    gold, predicted = list(gold), list(predicted)
    labels = sorted(set(gold) | set(predicted))
    return {
        "n": len(gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "micro_f1": float(f1_score(gold, predicted, labels=labels, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(gold, predicted)),
    }
