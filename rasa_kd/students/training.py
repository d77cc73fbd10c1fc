"""`transformers.Trainer` for distillation: only `compute_loss` is overridden.

Training batches carry `teacher_logits` and `gold` (label id, -1 for augmented
sentences), and with entity tags `teacher_tags`, `tag_mask` and `gold_tags` (IGNORE but on
originals of a version-2 transfer set); dev batches carry `gold`
(and `gold_tags`) only and are scored with cross-entropy.
Checkpoints go to `<work>/checkpoints` every epoch; the best by the dev metric is
kept and loaded at the end, and a re-run resumes from the last checkpoint.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from rasa_kd.evaluation.metrics import classification_scores, joint_selection, piece_tag_scores
from rasa_kd.students.distil_options import DistilOptions
from rasa_kd.students.losses import distillation_loss, hidden_state_loss, tag_loss, vector_loss

SELECTION = "selection"  # the dev metric of a student with entity tags: mean of intent micro-F1 and entity F1


class HiddenStateDistillation(nn.Module):
    """The student plus a frozen teacher and a learned projection, for the hidden-state loss.

    forward returns the student's outputs plus, last, the hidden-state MSE (in training mode;
    None in eval mode, where the teacher is not run). `.student` is the model to save.
    teacher_ids: for a pruned vocabulary, the teacher's id of each student id."""

    def __init__(self, student, teacher_model, teacher_ids=None):
        super().__init__()
        self.student = student
        self.teacher = teacher_model.eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.projection = nn.Linear(student.student_config.hidden_size, teacher_model.config.hidden_size)
        ids = torch.as_tensor(teacher_ids if teacher_ids is not None else [], dtype=torch.long)
        self.register_buffer("teacher_ids", ids, persistent=False)

    def forward(self, input_ids, attention_mask):
        outputs = self.student(input_ids, attention_mask)
        if not self.training:
            return (*outputs, None)
        self.teacher.eval()
        teacher_input = self.teacher_ids[input_ids] if len(self.teacher_ids) else input_ids
        with torch.no_grad():
            target = self.teacher(input_ids=teacher_input, attention_mask=attention_mask).last_hidden_state
        return (*outputs, hidden_state_loss(self.projection(outputs[2]), target, attention_mask))


class SentenceVectorDistillation(nn.Module):
    """The student plus a learned projection of its sentence vector to the teacher's `width`, for
    the sentence-vector loss: forward returns the student's outputs plus, last, the projected
    vector (in training mode; None in eval mode). `.student` is the model to save."""

    def __init__(self, student, width: int):
        super().__init__()
        self.student = student
        with torch.no_grad():
            was_training = student.training
            one_token = torch.ones((1, 1), dtype=torch.long)
            sentence_width = student.eval()(one_token, one_token)[1].shape[-1]
            student.train(was_training)
        self.projection = nn.Linear(sentence_width, width)

    def forward(self, input_ids, attention_mask):
        outputs = self.student(input_ids, attention_mask)
        return (*outputs, self.projection(outputs[1]) if self.training else None)


class DistillationTrainer(Trainer):
    """Trainer whose loss is the distillation loss of `rasa_kd.students.losses`."""

    def __init__(self, *args, loss: str = "mse", temperature: float = 1.0, hard_weight: float = 0.0,
                 hidden_weight: float = 0.0, tag_weight: float = 1.0, tag_hard_weight: float = 0.0,
                 vector_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_kind, self.temperature, self.hard_weight = loss, temperature, hard_weight
        self.hidden_weight, self.tag_weight, self.tag_hard_weight = hidden_weight, tag_weight, tag_hard_weight
        self.vector_weight = vector_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(inputs["input_ids"], inputs["attention_mask"])
        logits = outputs[0]
        wrapped = bool(self.hidden_weight or self.vector_weight)  # the wrapper's extra output comes last
        tag_logits = outputs[3] if len(outputs) > 3 + wrapped else None
        teacher = inputs.get("teacher_logits")
        if teacher is None:
            loss = F.cross_entropy(logits, inputs["gold"])
        else:
            loss = distillation_loss(logits, teacher, inputs["gold"], self.loss_kind, self.temperature,
                                     self.hard_weight)
            if self.hidden_weight and outputs[-1] is not None:
                loss = loss + self.hidden_weight * outputs[-1]
            if self.vector_weight and outputs[-1] is not None:
                loss = loss + self.vector_weight * vector_loss(outputs[-1], inputs["teacher_vectors"])
            if tag_logits is not None and "teacher_tags" in inputs:
                loss = loss + self.tag_weight * tag_loss(tag_logits, inputs["teacher_tags"], inputs["tag_mask"],
                                                         inputs.get("gold_tags"), self.tag_hard_weight)
        if not return_outputs:
            return loss
        return loss, ({"logits": logits} if tag_logits is None else {"logits": logits, "tag_logits": tag_logits})


def metrics_function(labels: Sequence[str], tags: Optional[Sequence[str]] = None):
    """Dev scores; with `tags` also entity precision/recall/F1 per piece of the gold-tagged dev
    sentences and SELECTION, the mean of intent micro-F1 and entity F1."""

    def compute_metrics(prediction) -> Dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        gold = prediction.label_ids[0] if isinstance(prediction.label_ids, tuple) else prediction.label_ids
        scores = classification_scores([labels[i] for i in gold], [labels[i] for i in np.argmax(logits, axis=1)])
        scores = {k: v for k, v in scores.items() if k != "n"}
        if tags and isinstance(prediction.label_ids, tuple):
            scores.update(piece_tag_scores(prediction.label_ids[1], np.argmax(prediction.predictions[1], axis=-1),
                                           tags))
            scores[SELECTION] = joint_selection(scores)
        return scores

    return compute_metrics


def training_arguments(options: DistilOptions, output_dir: Path, best: bool = True, tagging: bool = False):
    """The Trainer's arguments; `best`: load the best checkpoint by the dev metric at the end
    (else the last one stays); `tagging`: the student also tags entities (dev metric SELECTION)."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_ratio=options.warmup_ratio,
        lr_scheduler_type=options.lr_scheduler,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=best,
        metric_for_best_model=SELECTION if tagging else options.best_metric,
        greater_is_better=True,
        logging_strategy="epoch",
        label_names=["gold", "gold_tags"] if tagging else ["gold"],
        remove_unused_columns=False,
        report_to=[],
        seed=options.seed,
        data_seed=options.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        save_safetensors=True,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )


def last_checkpoint(folder: Path) -> Optional[str]:
    return get_last_checkpoint(str(folder)) if Path(folder).is_dir() else None
