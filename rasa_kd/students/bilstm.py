"""BiLSTM student (Tang et al. 2019; Sučík 2020).

embeddings -> one bidirectional LSTM layer -> max or last-state pooling ->
fully-connected layer (ReLU, dropout) -> logits.

Embedding modes (Kim 2014): `static` (pretrained vectors, frozen), `non-static`
(pretrained vectors, trained) and `multichannel` (both, concatenated). With word
vocabularies the `[UNK]` vector is trained in every mode.

The two directions are two unidirectional LSTMs; the backward one reads each
sequence reversed *within its length*, so padding never reaches a real position
and a text gets the same vectors alone or in a padded batch (this also keeps the
model exportable to ONNX with dynamic batch and length).

`forward(input_ids, attention_mask)` returns `(logits, sentence, tokens)`:
logits [n, n_labels], the pooled sentence vector [n, 2*hidden] and the token
vectors [n, length, 2*hidden] (zeros at padding); with entity tags (`n_tags`)
also `tag_logits` [n, length, n_tags] from a linear token head on the token vectors.
"""
from typing import Dict, Optional, Union

import numpy as np
import torch
from torch import nn

from rasa_kd.students.config import BiLSTMConfig


def reverse_within_length(lengths: torch.Tensor, length: int) -> torch.Tensor:
    """Index [n, length] that reverses positions < lengths[i] and keeps the rest in place."""
    positions = torch.arange(length, device=lengths.device).unsqueeze(0)
    lengths = lengths.unsqueeze(1)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class BiLSTMStudent(nn.Module):
    """See the module docstring; `config` is a BiLSTMConfig or student.json's dict of one."""

    architecture = "bilstm"

    def __init__(self, config: Union[BiLSTMConfig, Dict], vectors: Optional[np.ndarray] = None):
        super().__init__()
        config = BiLSTMConfig.from_dict(config)
        self.student_config = config
        mode, dim, vocab = config.mode, config.embedding_dim, config.vocab_size
        self.static_embedding = nn.Embedding(vocab, dim) if mode in ("static", "multichannel") else None
        self.trained_embedding = nn.Embedding(vocab, dim) if mode in ("non-static", "multichannel") else None
        has_unk = config.unk_id is not None and self.static_embedding is not None
        self.unk_vector = nn.Parameter(torch.zeros(dim)) if has_unk else None
        if self.static_embedding is not None:
            self.static_embedding.weight.requires_grad_(False)
        if vectors is not None:
            self._set_vectors(torch.as_tensor(vectors, dtype=torch.float32))
        channels = dim * (2 if mode == "multichannel" else 1)
        hidden = config.hidden_size
        self.forward_lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(channels, hidden, batch_first=True)
        self.fc = nn.Linear(2 * hidden, config.fc_size)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.fc_size, config.n_labels)
        self.tag_classifier = nn.Linear(2 * hidden, config.n_tags) if config.n_tags else None

    def _set_vectors(self, vectors: torch.Tensor) -> None:
        for embedding in (self.static_embedding, self.trained_embedding):
            if embedding is not None:
                embedding.weight.data.copy_(vectors)
        if self.unk_vector is not None:
            self.unk_vector.data.copy_(vectors[self.student_config.unk_id])

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        channels = []
        if self.static_embedding is not None:
            static = self.static_embedding(input_ids)
            if self.unk_vector is not None:  # the one trained row of the frozen channel
                is_unk = (input_ids == self.student_config.unk_id).unsqueeze(-1)
                static = torch.where(is_unk, self.unk_vector.to(static.dtype).expand_as(static), static)
            channels.append(static)
        if self.trained_embedding is not None:
            channels.append(self.trained_embedding(input_ids))
        return channels[0] if len(channels) == 1 else torch.cat(channels, dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        x = self.embed(input_ids)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        reverse = reverse_within_length(lengths, input_ids.shape[1])
        forward_states, _ = self.forward_lstm(x)
        backward_states, _ = self.backward_lstm(gather_positions(x, reverse))
        backward_states = gather_positions(backward_states, reverse)
        tokens = torch.cat([forward_states, backward_states], dim=-1) * mask
        if self.student_config.pooling == "max":
            sentence = tokens.masked_fill(mask == 0, -1e4).max(dim=1).values
        else:
            last = gather_positions(forward_states, (lengths - 1).unsqueeze(1)).squeeze(1)
            sentence = torch.cat([last, backward_states[:, 0]], dim=-1)
        hidden = self.dropout(torch.relu(self.fc(sentence)))
        if self.tag_classifier is None:
            return self.classifier(hidden), sentence, tokens
        return self.classifier(hidden), sentence, tokens, self.tag_classifier(self.dropout(tokens))

    @staticmethod
    def is_embedding_parameter(name: str) -> bool:
        return "embedding" in name or name == "unk_vector"
