"""The teacher folder: what `rasa-kd teacher` writes, and the one way every later stage reads it.

    config.json, model.safetensors   a Hugging Face sequence-classification model
    tokenizer files                  the checkpoint's tokenizer
    labels.json                      label names, in the order of the model's logits
    rasa_kd_teacher.json             {"format": "rasa-kd-teacher", "version": 1,
                                      "pooling": "cls"|"mean", "max_length": N}
    tags.json, tag_head.safetensors  a joint teacher's entity tag head (`rasa_kd.teachers.tag_head`)
    metrics.json                     dev scores and the settings used (not needed to run it)

`TeacherFolder(path)` is what `label`, `evaluate`, `distil` (the student's vocabulary,
embeddings and hidden-state loss) and the benchmarks use: labels, settings, an
identity by content hash, the classifier with the folder's pooling applied, its base
model, and logits for texts. The models load on first use. A folder without
labels.json is a plain base checkpoint: students can still take its vocabulary and
embeddings. Fine-tuning stays in `rasa_kd.teachers.fine_tune`.

Pooling (`cls`, `mean`, a sentence encoder's own): `rasa_kd.teachers.pooling`.
"""
import contextlib
import functools
import hashlib
import json
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer

from rasa_kd.errors import UserError
from rasa_kd.formats.digests import add_file
from rasa_kd.formats.transfer_set import LABELS_FILE, read_labels, read_tags, write_labels
from rasa_kd.nlu_data.entity_tags import LABELLINGS, is_special, spread_to_pieces
from rasa_kd.teachers.pooling import POOLINGS, MeanPooledClassifier, with_pooling
from rasa_kd.teachers.tag_head import JointTeacher

TEACHER_FILE = "rasa_kd_teacher.json"
METRICS_FILE = "metrics.json"
DEFAULT_SETTINGS = {"pooling": "cls", "max_length": 64}  # what a folder without rasa_kd_teacher.json means


# ---------------------------------------------------------------- files


def read_settings(path) -> Dict:
    """The teacher's rasa_kd_teacher.json (pooling, max_length); cls/64 when absent."""
    file = Path(path) / TEACHER_FILE
    settings = dict(DEFAULT_SETTINGS)
    if file.is_file():
        try:
            settings.update(json.loads(file.read_text(encoding="utf-8")))
        except ValueError as error:
            raise UserError(f"{file}: not valid JSON") from error
    if settings["pooling"] not in POOLINGS:
        raise UserError(f"{file}: unknown pooling {settings['pooling']!r} (expected cls or mean)")
    if settings.get("labelling", LABELLINGS[0]) not in LABELLINGS:
        raise UserError(f"{file}: unknown labelling {settings['labelling']!r} (expected {' or '.join(LABELLINGS)})")
    return settings


def write_teacher_files(folder: Path, labels: Sequence[str], pooling: str, max_length: int,
                        labelling: Optional[str] = None) -> None:
    """labels.json and rasa_kd_teacher.json: what makes a model folder a teacher folder
    (`labelling`: a joint teacher's, see `rasa_kd.teachers.tag_head`)."""
    write_labels(folder, labels)
    settings = {"format": "rasa-kd-teacher", "version": 1, "pooling": pooling, "max_length": max_length}
    if labelling:
        settings["labelling"] = labelling
    (folder / TEACHER_FILE).write_text(json.dumps(settings, indent=1) + "\n")


def content_hash(folder: Path) -> str:
    """SHA-256 over the names and bytes of the folder's files: the same teacher copied or
    re-mounted elsewhere (new paths, new times) keeps its identity."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode() + b"\0")
        add_file(digest, file)
    return digest.hexdigest()


# ---------------------------------------------------------------- batched inference


def encode(tokenizer, texts: Sequence[str], max_length: int) -> List[List[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def length_order(lengths: Sequence[int]) -> List[int]:
    """Row indices, longest first; ties keep the input order (deterministic)."""
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Row indices in batches of similar length, so padding stays small."""
    order = length_order(lengths)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def batch_outputs(model, tokenizer, ids: Sequence[Sequence[int]],
                  fields: Sequence[str] = ("logits",)) -> Tuple[np.ndarray, ...]:
    """The model's output `fields` as float32 numpy arrays for a batch of token-id lists, padded to
    the longest (`logits` [batch, labels]; a joint teacher's `tag_logits` [batch, longest, tags])."""
    longest = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), longest), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(ids), longest), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    device = next(model.parameters()).device
    with torch.inference_mode():
        outputs = model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
    return tuple(getattr(outputs, field).float().cpu().numpy() for field in fields)


def batch_logits(model, tokenizer, ids: Sequence[Sequence[int]], field: str = "logits"):
    """One output `field` of `batch_outputs`."""
    return batch_outputs(model, tokenizer, ids, (field,))[0]


def predict_logits(model, tokenizer, texts: Sequence[str], max_length: int = 64, batch_size: int = 64):
    """Logits (N x labels, float32) for `texts`, in input order, with length-sorted batches."""
    ids = encode(tokenizer, texts, max_length)
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        out[batch] = batch_logits(model, tokenizer, [ids[i] for i in batch])
    return out


def predict_tag_logits(model, tokenizer, texts: Sequence[str], max_length: int = 64,
                       batch_size: int = 64) -> List[np.ndarray]:
    """A joint teacher's tag logits per text, [its pieces (with specials), tags] float32, in input order."""
    ids = encode(tokenizer, texts, max_length)
    out: List[Optional[np.ndarray]] = [None] * len(texts)
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        logits = batch_logits(model, tokenizer, [ids[i] for i in batch], field="tag_logits")
        for row, index in enumerate(batch):
            out[index] = logits[row, :len(ids[index])]
    return out


@contextlib.contextmanager
def classifier_inputs(model) -> Iterator[List[np.ndarray]]:
    """While open, each forward pass of `model` (a classifier, mean-pooled or not, or a joint
    teacher) appends what its classifier head reads, [batch, width] float32, to the yielded list:
    the pooled sentence vector (a RoBERTa/MPNet head's input at position 0)."""
    owner = model.model if isinstance(model, (MeanPooledClassifier, JointTeacher)) else model
    head = getattr(owner, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise UserError(f"{type(owner).__name__} has no classifier head whose input is a sentence vector")
    captured: List[np.ndarray] = []

    def keep(module, inputs):
        vector = inputs[0][:, 0] if inputs[0].dim() == 3 else inputs[0]
        captured.append(vector.float().cpu().numpy())

    handle = head.register_forward_pre_hook(keep)
    try:
        yield captured
    finally:
        handle.remove()


def sentence_vectors(model, tokenizer, texts: Sequence[str], max_length: int = 64, batch_size: int = 64):
    """What `model`'s classifier reads for each text (its pooled sentence vector), in input order."""
    ids = encode(tokenizer, texts, max_length)
    rows: List[Optional[np.ndarray]] = [None] * len(texts)
    for batch in length_sorted_batches([len(x) for x in ids], batch_size):
        with classifier_inputs(model) as captured:
            batch_logits(model, tokenizer, [ids[i] for i in batch])
        for row, vector in zip(batch, captured[0]):
            rows[row] = vector
    return np.stack(rows)


def load_tokenizer(name_or_path: str):
    """The fast tokenizer of a checkpoint. transformers 4.57.3-4.57.x warn that every local
    tokenizer with over 100k pieces (ours: USE-multilingual's 128k) might be a Mistral one with
    a wrong regex; none of ours is, and saying so explicitly silences it."""
    return AutoTokenizer.from_pretrained(name_or_path, use_fast=True, fix_mistral_regex=False)


# ---------------------------------------------------------------- the folder


class TeacherFolder:
    """A teacher folder (see the module docstring); models load on first use.

    max_length: tokens per sentence when running it (default: the folder's own);
    device: where the models go (default: the CPU)."""

    def __init__(self, path, max_length: Optional[int] = None, device=None):
        self.path = Path(path).expanduser().resolve()
        if not (self.path / "config.json").is_file():
            raise UserError(f"{path}: not a teacher folder (no config.json; make one with `rasa-kd teacher`)")
        self.settings = read_settings(self.path)
        self.max_length = int(max_length or self.settings["max_length"])
        self.device = device
        self._tokenizer = self._hf_model = self._classifier = self._base_model = self._hash = self._joint = None

    def __repr__(self) -> str:
        return f"TeacherFolder({str(self.path)!r})"

    @functools.cached_property
    def labels(self) -> Optional[List[str]]:
        """labels.json's names (the logits' order); None for a plain base checkpoint."""
        return read_labels(self.path) if (self.path / LABELS_FILE).is_file() else None

    @functools.cached_property
    def tags(self) -> Optional[List[str]]:
        """tags.json's entity tag names (the tag head's outputs); None for an intent-only teacher."""
        return read_tags(self.path)

    @property
    def labelling(self) -> str:
        return self.settings.get("labelling", LABELLINGS[0])

    @property
    def pooling(self) -> str:
        return self.settings["pooling"]

    @property
    def is_classifier(self) -> bool:
        return self.labels is not None

    def content_hash(self) -> str:
        if self._hash is None:
            self._hash = content_hash(self.path)
        return self._hash

    def identity(self) -> Dict:
        """Who this teacher is, by content: student.json's `teacher` entry and label's resume plan."""
        config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        return {"path": str(self.path), "name": self.path.name, "model_type": config.get("model_type"),
                "fingerprint": self.content_hash()[:16], "max_length": self.max_length}

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            try:
                self._tokenizer = load_tokenizer(str(self.path))
            except (OSError, ValueError) as error:
                raise UserError(f"{self.path}: cannot load the teacher's tokenizer ({type(error).__name__})") from error
        return self._tokenizer

    @property
    def classifier(self):
        """The sequence-classification model in eval mode with the folder's pooling: forward takes
        input_ids / attention_mask and returns `.logits`, one column per label."""
        if self._classifier is None:
            if not self.is_classifier:
                raise UserError(f"{self.path}: not a fine-tuned teacher (no {LABELS_FILE}; make one with "
                                f"`rasa-kd teacher`)")
            self._hf_model = self._load("AutoModelForSequenceClassification")
            if self._hf_model.config.num_labels != len(self.labels):
                raise UserError(f"{self.path}/{LABELS_FILE} names {len(self.labels)} labels but the model has "
                                f"{self._hf_model.config.num_labels} outputs")
            self._classifier = with_pooling(self._hf_model, self.pooling, str(self.path)).eval()
        return self._classifier

    @property
    def joint(self) -> JointTeacher:
        """The classifier with its tag head: forward returns `.logits` and `.tag_logits` per piece."""
        if self._joint is None:
            if self.tags is None:
                raise UserError(f"{self.path}: an intent-only teacher (no tags.json): it tags no entities")
            self.classifier  # noqa: B018 - loads the model the head sits on
            self._joint = JointTeacher(self._hf_model, self.pooling, self.tags).load_head(self.path).eval()
            if self.device is not None:
                self._joint.to(self.device)
        return self._joint

    @property
    def base_model(self):
        """The base transformer (e.g. BertModel) without the classification head; for a teacher the
        classifier's own, sharing its weights."""
        if self._base_model is None:
            if self.is_classifier:
                self.classifier  # noqa: B018 - loads the model whose base this is
                self._base_model = getattr(self._hf_model, self._hf_model.base_model_prefix)
            else:
                self._base_model = self._load("AutoModel").eval()
        return self._base_model

    def _load(self, auto_class: str):
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            model = getattr(transformers, auto_class).from_pretrained(str(self.path))
        except (OSError, ValueError, KeyError) as error:
            raise UserError(f"{self.path}: cannot load the teacher ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:150]})") from error
        finally:
            transformers.logging.set_verbosity(verbosity)
        return model.to(self.device) if self.device is not None else model

    def encode(self, texts: Sequence[str]) -> List[List[int]]:
        return encode(self.tokenizer, texts, self.max_length)

    def batch_logits(self, ids: Sequence[Sequence[int]]):
        return batch_logits(self.classifier, self.tokenizer, ids)

    def predict_logits(self, texts: Sequence[str], batch_size: int = 64):
        """Logits [n, len(labels)] (float32 numpy), in input order."""
        return predict_logits(self.classifier, self.tokenizer, texts, self.max_length, batch_size)

    def batch_logits_and_tags(self, ids: Sequence[Sequence[int]]) -> Tuple[np.ndarray, List[np.ndarray]]:
        """A joint teacher's intent logits [batch, labels] and each row's tag logits [its pieces
        (with specials), tags] from one forward pass of the backbone."""
        logits, tag_logits = batch_outputs(self.joint, self.tokenizer, ids, ("logits", "tag_logits"))
        return logits, [tag_logits[row, :len(seq)] for row, seq in enumerate(ids)]

    def predict_tags(self, texts: Sequence[str], batch_size: int = 64) -> List[Tuple[np.ndarray, np.ndarray]]:
        """A joint teacher's tags per text (`tags_on_pieces`), in input order."""
        return self.tags_on_pieces(texts, predict_tag_logits(self.joint, self.tokenizer, texts, self.max_length,
                                                             batch_size))

    def tags_on_pieces(self, texts: Sequence[str], tag_logits: Sequence[np.ndarray]) -> List[Tuple[np.ndarray,
                                                                                                     np.ndarray]]:
        """Each text's (tag logits [pieces, tags] float32, their character spans [pieces, 2] int32),
        the special tokens left out, from its logits per piece with specials. Every piece has its tag
        (`first`-labelled teachers: spread to the later pieces of each word, `spread_to_pieces`)."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True)
        out = []
        for row, rows_logits in enumerate(tag_logits):
            word_ids = encoded.word_ids(row)
            if self.labelling == "first":
                rows_logits = spread_to_pieces(rows_logits, encoded["offset_mapping"][row], word_ids, self.tags)
            keep = [i for i, (span, word) in enumerate(zip(encoded["offset_mapping"][row], word_ids))
                    if not is_special(span, word)]
            spans = np.array([encoded["offset_mapping"][row][i] for i in keep], dtype=np.int32).reshape(-1, 2)
            out.append((rows_logits[keep], spans))
        return out

    def word_embeddings(self):
        return self.base_model.get_input_embeddings().weight.detach().float().cpu().numpy().copy()

    def position_embeddings(self):
        table = getattr(getattr(self.base_model, "embeddings", None), "position_embeddings", None)
        return None if table is None else table.weight.detach().float().cpu().numpy().copy()


def same_labels(teachers: Sequence[TeacherFolder]) -> List[str]:
    """The label list every teacher of an ensemble shares; one UserError line when they differ."""
    for other in teachers[1:]:
        if other.labels != teachers[0].labels:
            raise UserError(f"{other.path}: labels.json differs from {teachers[0].path}'s (an ensemble needs "
                            f"identical label lists in the same order)")
    return teachers[0].labels
