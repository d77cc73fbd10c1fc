"""The joint teacher: the fine-tuned sentence classifier plus a token-classification head that
tags each piece with a BIO entity tag (`rasa_kd.nlu_data.entity_tags`), both from one forward
pass of the backbone.

    tags.json                 the tag names, in the order of the tag head's outputs
    tag_head.safetensors      the head: dropout -> linear over the last hidden states
    rasa_kd_teacher.json      gains "labelling": "first" | "all"

A teacher folder without tags.json is an intent-only teacher, as before. The intent logits are
those of the folder's classifier (same pooling, same weights), so adding the head changes
nothing for intent-only stages.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput

from rasa_kd.errors import UserError
from rasa_kd.formats.transfer_set import write_tags
from rasa_kd.nlu_data.entity_tags import IGNORE
from rasa_kd.teachers.pooling import pooled_logits

HEAD_FILE = "tag_head.safetensors"


@dataclass
class JointOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    tag_logits: Optional[torch.Tensor] = None


class JointTeacher(nn.Module):
    """Intent logits through `pooled_logits` (the folder's pooling) and tag logits per piece from the
    same last hidden states. Its `model` is the HF classifier, so `model.save_pretrained` still
    writes the intent teacher; the head is saved beside it (`save_head`)."""

    def __init__(self, model, pooling: str, tags: Sequence[str], tag_weight: float = 1.0,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.model, self.config, self.pooling, self.tags = model, model.config, pooling, list(tags)
        self.tag_weight, self.label_smoothing = tag_weight, label_smoothing
        self.tag_dropout = nn.Dropout(getattr(model.config, "hidden_dropout_prob", 0.1))
        self.tag_head = nn.Linear(model.config.hidden_size, len(self.tags))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, tags=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        base_output = getattr(self.model, self.model.base_model_prefix)(**inputs)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = pooled_logits(self.model, base_output, attention_mask, self.pooling)
        tag_logits = self.tag_head(self.tag_dropout(base_output.last_hidden_state))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
            if tags is not None and (tags != IGNORE).any():
                loss = loss + self.tag_weight * nn.functional.cross_entropy(
                    tag_logits.reshape(-1, len(self.tags)), tags.reshape(-1), ignore_index=IGNORE)
        return JointOutput(loss=loss, logits=logits, tag_logits=tag_logits)

    def save_head(self, folder: Path) -> None:
        from safetensors.torch import save_file

        save_file({name: tensor.detach().cpu().contiguous() for name, tensor in self.tag_head.state_dict().items()},
                  str(Path(folder) / HEAD_FILE))
        write_tags(folder, self.tags)

    def load_head(self, folder: Path) -> "JointTeacher":
        from safetensors.torch import load_file

        file = Path(folder) / HEAD_FILE
        try:
            self.tag_head.load_state_dict(load_file(str(file)))
        except (OSError, RuntimeError) as error:
            raise UserError(f"{file}: cannot load the teacher's tag head ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:150]})") from error
        return self


def can_tag(model) -> bool:
    """Whether the backbone gives one hidden state per piece for a tag head to read."""
    return hasattr(model, "base_model_prefix") and hasattr(model.config, "hidden_size")
