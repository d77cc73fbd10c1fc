"""Distillation losses on logits (Hinton et al. 2015; Tang et al. 2019).

* `mse`: mean squared error between student and teacher logits (the default).
* `ce`: soft cross-entropy against the teacher's softmax at temperature T,
  multiplied by T² so gradients keep their scale across temperatures.
* hard weight α: `(1 - α) * soft + α * CE(student, gold)`, the gold part averaged
  over the rows that have a gold label (id >= 0: the original sentences).
* entity tags (`--tag-weight γ`, a transfer set with the teacher's tags): `+ γ * soft
  cross-entropy` of the student's tag distribution per piece against the teacher's, over
  the pieces that have one; `--tag-hard-weight δ` mixes in cross-entropy on the gold tags of the
  original sentences as α does for intents: `(1 - δ) * soft + δ * hard`.
* sentence vectors (`--vector-weight β`, a transfer set labelled with `--vectors`): `+ β * (1 -
  cos(W·student_sentence, teacher_sentence))`, W a learned projection to the teacher's width
  (scale-free, so one β suits teachers whose vectors differ in size; Sun et al. 2019 match
  normalised [CLS] vectors the same way).
* hidden states (small BERT, `--hidden-weight β`): `+ β * MSE(W·student_tokens,
  teacher_tokens)` over real (unpadded) tokens, W a learned projection to the
  teacher's width (Jiao et al. 2020); the teacher runs on each batch.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from rasa_kd.nlu_data.entity_tags import IGNORE

LOSSES = ("mse", "ce")


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "mse", temperature: float = 1.0) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(student, teacher)
    if kind == "ce":
        targets = F.softmax(teacher / temperature, dim=-1)
        log_probs = F.log_softmax(student / temperature, dim=-1)
        return -(targets * log_probs).sum(dim=-1).mean() * temperature ** 2
    raise ValueError(f"unknown loss {kind!r} (choose from {', '.join(LOSSES)})")


def hard_loss(student: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on rows with gold >= 0; zero (with a gradient path) when there are none."""
    has_gold = gold >= 0
    if not bool(has_gold.any()):
        return student.sum() * 0.0
    return F.cross_entropy(student[has_gold], gold[has_gold])


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, gold: torch.Tensor, kind: str = "mse",
                      temperature: float = 1.0, hard_weight: float = 0.0) -> torch.Tensor:
    loss = soft_loss(student, teacher, kind, temperature)
    if hard_weight > 0:
        loss = (1 - hard_weight) * loss + hard_weight * hard_loss(student, gold)
    return loss


def vector_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance between the (projected) student and teacher sentence vectors."""
    return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()


def hidden_state_loss(student_tokens: torch.Tensor, teacher_tokens: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per hidden unit over the unpadded positions of the batch."""
    mask = attention_mask.unsqueeze(-1).to(student_tokens.dtype)
    squared = ((student_tokens - teacher_tokens) ** 2) * mask
    return squared.sum() / (mask.sum() * student_tokens.shape[-1]).clamp(min=1.0)


def tag_loss(student_tags: torch.Tensor, teacher_tags: torch.Tensor, tag_mask: torch.Tensor,
             gold_tags: Optional[torch.Tensor] = None, hard_weight: float = 0.0) -> torch.Tensor:
    """Soft cross-entropy per piece [n, length, tags] against the teacher's tag logits, averaged over
    the pieces where `tag_mask` [n, length] is 1; zero (with a gradient path) when there are none.
    With `hard_weight` δ and `gold_tags` [n, length] (IGNORE where unknown): (1-δ)·soft + δ·hard."""
    mask = tag_mask.to(student_tags.dtype)
    if not bool(mask.any()):
        soft = student_tags.sum() * 0.0
    else:
        per_piece = -(F.softmax(teacher_tags, dim=-1) * F.log_softmax(student_tags, dim=-1)).sum(dim=-1)
        soft = (per_piece * mask).sum() / mask.sum()
    if hard_weight > 0 and gold_tags is not None:
        return (1 - hard_weight) * soft + hard_weight * hard_tag_loss(student_tags, gold_tags)
    return soft


def hard_tag_loss(student_tags: torch.Tensor, gold_tags: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the pieces with a gold tag; zero (with a gradient path) when there are none."""
    known = gold_tags != IGNORE
    if not bool(known.any()):
        return student_tags.sum() * 0.0
    return F.cross_entropy(student_tags[known], gold_tags[known])
