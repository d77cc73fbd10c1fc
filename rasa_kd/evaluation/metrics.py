"""Classification scores, all from scikit-learn, shared by every stage that evaluates."""
from typing import Any, Dict, Sequence

import numpy as np

from rasa_kd.nlu_data.entity_tags import IGNORE


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


def tag_scores(gold: Sequence[str], predicted: Sequence[str], outside: str = "O") -> Dict[str, float]:
    """Entity micro precision, recall and F1 per tagged position (a model's pieces; Rasa's entity
    report counts the same way per Rasa token): each position's entity type (BIO prefix dropped)
    against the gold one, `outside` not an entity."""
    from sklearn.metrics import precision_recall_fscore_support

    def entity_type(tag: str) -> str:
        return tag.split("-", 1)[1] if "-" in tag else tag

    gold_types, predicted_types = [entity_type(t) for t in gold], [entity_type(t) for t in predicted]
    labels = sorted((set(gold_types) | set(predicted_types)) - {outside})
    if not labels:
        return {"entity_precision": 0.0, "entity_recall": 0.0, "entity_f1": 0.0}
    precision, recall, f1, _ = precision_recall_fscore_support(gold_types, predicted_types, labels=labels,
                                                               average="micro", zero_division=0)
    return {"entity_precision": float(precision), "entity_recall": float(recall), "entity_f1": float(f1)}


def piece_tag_scores(gold_ids, predicted_ids, names: Sequence[str]) -> Dict[str, float]:
    """`tag_scores` of tag ids (arrays of any shape) over the positions with a gold tag (not IGNORE)."""
    gold_ids, predicted_ids = np.asarray(gold_ids).reshape(-1), np.asarray(predicted_ids).reshape(-1)
    keep = gold_ids != IGNORE
    return tag_scores([names[i] for i in gold_ids[keep]], [names[i] for i in predicted_ids[keep]])


def entity_scores(gold: Sequence[Sequence[Dict[str, Any]]], predicted: Sequence[Sequence[Dict[str, Any]]]) -> Dict:
    """Entity-level micro precision, recall and F1 (as seqeval/conlleval count): a predicted entity
    is right when its start, end and type all equal a gold one's. `gold_entities`: their number."""
    def keys(entities) -> set:
        return {(e["start"], e["end"], e["entity"]) for e in entities}

    right = sum(len(keys(g) & keys(p)) for g, p in zip(gold, predicted))
    n_gold, n_predicted = sum(len(keys(g)) for g in gold), sum(len(keys(p)) for p in predicted)
    precision, recall = right / max(n_predicted, 1), right / max(n_gold, 1)
    return {"entity_precision": precision, "entity_recall": recall, "gold_entities": n_gold,
            "entity_f1": 2 * right / max(n_gold + n_predicted, 1)}


def joint_selection(scores: Dict[str, float]) -> float:
    """What picks the epoch of a model with intents and entities: the mean of intent micro-F1 and entity F1."""
    return (scores["micro_f1"] + scores["entity_f1"]) / 2
