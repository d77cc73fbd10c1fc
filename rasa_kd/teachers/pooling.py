"""How a teacher turns its backbone's output into intent logits (the folder's `pooling`).

`cls` is the model's own head (BERT: pooler on [CLS] -> dropout -> linear; RoBERTa/MPNet: a
classifier that reads position 0); `mean` averages the last hidden states over the
non-padding tokens and applies the same head (sentence-transformers checkpoints such as the
default all-MiniLM-L6-v2 were trained with mean pooling). A sentence encoder
(USE-multilingual) has its own pooling: its head reads its sentence vector.
"""
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from rasa_kd.errors import UserError
from rasa_kd.teachers import use_multilingual

POOLINGS = ("cls", "mean")


class MeanPooledClassifier(torch.nn.Module):
    """A sequence-classification model whose linear classifier reads the masked mean of the
    last hidden states instead of the [CLS] pooler. Its weights are those of `model`, so
    `model.save_pretrained` saves a normal HF folder."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        base_output = getattr(self.model, self.model.base_model_prefix)(**inputs)
        if attention_mask is None:
            attention_mask = torch.ones(base_output.last_hidden_state.shape[:2], device=input_ids.device)
        logits = pooled_logits(self.model, base_output, attention_mask, "mean")
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def pooled_logits(model, base_output, attention_mask, pooling: str):
    """The classifier `model`'s logits from its base model's output: what `model(...)` itself
    computes for cls pooling (and a sentence encoder), the masked mean of the last hidden
    states for mean."""
    if is_sentence_encoder(model) or (pooling == "cls" and linear_head(model)):
        return model.classifier(model.dropout(base_output.pooler_output))
    hidden = base_output.last_hidden_state
    if pooling == "cls":
        return model.classifier(hidden)  # RoBERTa/MPNet heads read position 0 themselves
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if linear_head(model):
        return model.classifier(model.dropout(pooled))
    return model.classifier(pooled.unsqueeze(1))


def linear_head(model) -> bool:
    """BERT-style: dropout then a linear classifier over the pooled vector."""
    return isinstance(getattr(model, "classifier", None), torch.nn.Linear) and hasattr(model, "dropout")


def first_position_head(model) -> bool:
    """RoBERTa/MPNet-style: a classifier module (dense, dropout, out_proj) that reads position 0."""
    return hasattr(getattr(model, "classifier", None), "out_proj")


def with_pooling(model, pooling: str, name: str = "model"):
    """`model` itself for cls pooling; a mean-pooling wrapper sharing its weights for mean."""
    if pooling == "cls":
        return model
    if not (linear_head(model) or first_position_head(model)):
        raise UserError(f"{name}: --pooling mean needs a BERT-, RoBERTa- or MPNet-style classification head "
                        f"({type(model).__name__} has another); use --pooling cls")
    return MeanPooledClassifier(model)


def is_sentence_encoder(model) -> bool:
    """A model whose own head reads a sentence vector it computes (USE): pooled only its own way."""
    return isinstance(model, use_multilingual.UseForSequenceClassification)
