"""Small-BERT student: a down-scaled `transformers.BertModel` (Sučík 2020; Jiao et al. 2020).

Its sizes and their defaults are `rasa_kd.students.config.SmallBertConfig`; the
vocabulary is the teacher's wordpieces. The teacher's input embeddings reach the student's width in one of two
ways (`projection`):

* `linear`: the student keeps the teacher's embedding matrix (trained further) and a
  learned linear layer maps it to the hidden width; the layer is initialised with
  the PCA of the teacher's embeddings, so training starts from the PCA solution.
* `pca`: the embedding matrix is projected once onto its top principal components
  and becomes the student's own (hidden-width) word embeddings.

Position embeddings are projected the same way. When the student's widths equal
the teacher's, `init_from_teacher` copies the teacher's embeddings, evenly spaced
encoder layers and pooler instead.

`forward(input_ids, attention_mask)` returns `(logits, sentence, tokens)`: the
sentence vector is BERT's pooled [CLS] output, tokens the last hidden states; with
entity tags (`n_tags`) also `tag_logits` [n, length, n_tags] from a linear head on them.
"""
from typing import Dict, Optional, Union

import numpy as np
import torch
from torch import nn

from rasa_kd.students.config import SmallBertConfig


def pca_projection(matrix: np.ndarray, width: int):
    """(mean [d], components [d, width]) of the rows of `matrix`: x -> (x - mean) @ components."""
    matrix = np.asarray(matrix, dtype=np.float64)
    mean = matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(matrix - mean, full_matrices=False)
    components = vt[:width].T
    if components.shape[1] < width:  # wider than the teacher: pad with zero directions
        components = np.pad(components, ((0, 0), (0, width - components.shape[1])))
    return mean.astype(np.float32), components.astype(np.float32)


def bert_config(config: SmallBertConfig):
    from transformers import BertConfig

    vocab = 1 if config.projection == "linear" else config.vocab_size
    return BertConfig(
        vocab_size=vocab, hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
        hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
        pad_token_id=0, attn_implementation="eager",
    )


class SmallBertStudent(nn.Module):
    """See the module docstring; `config` is a SmallBertConfig or student.json's dict of one."""

    architecture = "bert"

    def __init__(self, config: Union[SmallBertConfig, Dict]):
        super().__init__()
        from transformers import BertModel

        config = SmallBertConfig.from_dict(config)
        self.student_config = config
        self.bert = BertModel(bert_config(config), add_pooling_layer=True)
        if config.projection == "linear":
            self.word_embeddings = nn.Embedding(config.vocab_size, config.teacher_embedding_dim)
            self.projection = nn.Linear(config.teacher_embedding_dim, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.n_labels)
        self.tag_classifier = nn.Linear(config.hidden_size, config.n_tags) if config.n_tags else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        token_types = torch.zeros_like(input_ids)
        if self.student_config.projection == "linear":
            embeds = self.projection(self.word_embeddings(input_ids))
            output = self.bert(inputs_embeds=embeds, attention_mask=attention_mask, token_type_ids=token_types)
        else:
            output = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_types)
        sentence = output.pooler_output
        tokens = output.last_hidden_state * attention_mask.unsqueeze(-1).to(sentence.dtype)
        if self.tag_classifier is None:
            return self.classifier(self.dropout(sentence)), sentence, tokens
        return self.classifier(self.dropout(sentence)), sentence, tokens, self.tag_classifier(self.dropout(tokens))

    @staticmethod
    def is_embedding_parameter(name: str) -> bool:
        return "embeddings" in name or name.startswith("projection.")

    def widths_match(self, teacher_config) -> bool:
        c = self.student_config
        return (c.hidden_size, c.num_attention_heads, c.intermediate_size) == (
            teacher_config.hidden_size, teacher_config.num_attention_heads, teacher_config.intermediate_size)

    @torch.no_grad()
    def init_embeddings(self, word: np.ndarray, position: Optional[np.ndarray]) -> None:
        """Teacher word (and position) embeddings -> this student's width (see module docstring)."""
        mean, components = pca_projection(word, self.student_config.hidden_size)
        if self.student_config.projection == "linear":
            self.word_embeddings.weight.copy_(torch.as_tensor(word))
            self.projection.weight.copy_(torch.as_tensor(components.T))
            self.projection.bias.copy_(torch.as_tensor(-mean @ components))
        else:
            projected = (word - mean) @ components
            self.bert.embeddings.word_embeddings.weight.copy_(torch.as_tensor(projected))
        if position is not None:
            rows = min(len(position), self.student_config.max_position_embeddings)
            projected = (position[:rows] - position[:rows].mean(axis=0)) @ components
            self.bert.embeddings.position_embeddings.weight[:rows].copy_(torch.as_tensor(projected))

    @torch.no_grad()
    def init_from_teacher(self, teacher_bert, word: Optional[np.ndarray] = None,
                          reduced: Optional[np.ndarray] = None) -> None:
        """Copy embeddings, evenly spaced layers and the pooler of a same-width teacher BertModel;
        `word`: the teacher's rows of the student's vocabulary (default: the whole table),
        `reduced`: their PCA (default: `word` itself)."""
        if word is None:
            word = teacher_bert.embeddings.word_embeddings.weight.detach().numpy()
        reduced = word if reduced is None else reduced
        student, n_teacher = self.bert, len(teacher_bert.encoder.layer)
        n_student = len(student.encoder.layer)
        picks = np.linspace(0, n_teacher - 1, n_student).round().astype(int) if n_student > 1 else [n_teacher - 1]
        for index, pick in enumerate(picks):
            student.encoder.layer[index].load_state_dict(teacher_bert.encoder.layer[int(pick)].state_dict())
        for name in ("position_embeddings", "token_type_embeddings", "LayerNorm"):
            source, target = getattr(teacher_bert.embeddings, name), getattr(student.embeddings, name)
            rows = min(source.weight.shape[0], target.weight.shape[0]) if "embeddings" in name else None
            if rows is None:
                target.load_state_dict(source.state_dict())
            else:
                target.weight[:rows].copy_(source.weight[:rows])
        if teacher_bert.pooler is not None:
            student.pooler.load_state_dict(teacher_bert.pooler.state_dict())
        self._copy_word_embeddings(torch.as_tensor(word), reduced)

    def _copy_word_embeddings(self, word: torch.Tensor, reduced: np.ndarray) -> None:
        """The teacher's (kept) word rows; with a narrower table (`reduced`, its PCA), the
        projection starts as the inverse PCA, so the student still starts at the teacher."""
        if self.student_config.projection != "linear":
            self.bert.embeddings.word_embeddings.weight.copy_(word)
            return
        if reduced.shape[1] == word.shape[1]:
            self.word_embeddings.weight.copy_(word)
            self.projection.weight.copy_(torch.eye(word.shape[1]))
            self.projection.bias.zero_()
            return
        mean, components = pca_projection(word.numpy(), reduced.shape[1])
        self.word_embeddings.weight.copy_(torch.as_tensor(reduced))
        self.projection.weight.copy_(torch.as_tensor(components))
        self.projection.bias.copy_(torch.as_tensor(mean))
