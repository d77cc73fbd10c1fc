"""The transfer set: the sentences a student learns the teacher from.

Format (a folder; `datasets.Dataset.save_to_disk`, memory-mapped Arrow):

  column   type                 meaning
  text     string               the sentence
  source   string               `original` (a training sentence) | `rules` (Tang et al.
                                2019 rule-based augmentation) | `lm` (sampled from a
                                fine-tuned language model)
  parent   int64                index of the training sentence it came from (originals:
                                their own index), -1 when there is none (lm)
  intent   string               gold intent of originals, "" for generated sentences
  logits   list<float32>        only after `rasa-kd label`: one teacher logit per label,
                                in the order of the folder's labels.json

Originals come first, in the order of the training file as Rasa loads it, so that
`parent` indexes rows 0..n_original-1. Every `text` is unique; no text equals (after
whitespace and case normalisation) a sentence of the excluded dev/test files.

Metadata files next to the Arrow files:
  transfer.json   {"format": "rasa-kd-transfer", "version": 1, "size", "counts" (by source),
                   "seed", "method", "params", "train", "exclude", ...}   (from augment)
  labels.json     teacher label names, the logits order                   (from label)
  label.json      {"teachers", "rows", "sentences_per_s", "seconds", ...} (from label)
"""
import json
from pathlib import Path
from typing import Dict, Optional

from rasa_kd.errors import UserError

FORMAT = "rasa-kd-transfer"
VERSION = 1
META_FILE = "transfer.json"
LABELS_FILE = "labels.json"
LABEL_META_FILE = "label.json"

TEXT, SOURCE, PARENT, INTENT, LOGITS = "text", "source", "parent", "intent", "logits"
COLUMNS = (TEXT, SOURCE, PARENT, INTENT)
SOURCES = ("original", "rules", "lm")
NO_PARENT = -1


def features(with_logits: bool = False):
    """The `datasets.Features` of a transfer set (with the logits column after labelling)."""
    from datasets import Features, List, Value

    spec = {TEXT: Value("string"), SOURCE: Value("string"), PARENT: Value("int64"), INTENT: Value("string")}
    if with_logits:
        spec[LOGITS] = List(Value("float32"))
    return Features(spec)


def normalised_key(text: str) -> str:
    """The key two sentences are "the same" by: collapsed whitespace, case-folded."""
    return " ".join(text.split()).casefold()


def read_meta(path) -> Dict:
    file = Path(path) / META_FILE
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise UserError(f"{file}: not valid JSON") from error


def load_transfer(path, require_logits: bool = False, require: Optional[tuple] = None):
    """Open a transfer-set folder (memory-mapped) and check its columns; one-line UserErrors.

    Only `text` is required by default (any Arrow dataset with a text column can be
    labelled); `require` names further columns, `require_logits` adds `logits`.
    """
    import datasets

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: transfer set folder not found (make one with `rasa-kd augment`)")
    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as error:  # datasets raises FileNotFoundError, ValueError, ArrowInvalid ...
        raise UserError(f"{path}: not a saved Arrow dataset ({type(error).__name__}; "
                        f"make one with `rasa-kd augment`)") from error
    if isinstance(dataset, datasets.DatasetDict):
        raise UserError(f"{path}: expected one Arrow dataset, found splits {list(dataset)}")
    needed = [TEXT, *(require or ()), *([LOGITS] if require_logits else [])]
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise UserError(f"{path}: transfer set lacks column(s) {', '.join(missing)} "
                        f"(has {', '.join(dataset.column_names) or 'none'})")
    if dataset.features[TEXT] != datasets.Value("string"):
        raise UserError(f"{path}: column text must hold strings, not {dataset.features[TEXT]}")
    if len(dataset) == 0:
        raise UserError(f"{path}: the transfer set is empty")
    if dataset.data.column(TEXT).null_count:
        raise UserError(f"{path}: column text has {dataset.data.column(TEXT).null_count} empty (null) rows")
    return dataset
