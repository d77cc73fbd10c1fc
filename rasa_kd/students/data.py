"""Reading the transfer set and feeding it to the Trainer without copying it into memory.

The transfer set (written by `rasa-kd label`) is a `datasets` Arrow folder with
columns `text`, `source` (original|rules|lm), `parent`, `intent` (gold intent of
original sentences, "" otherwise) and `logits` (float32 list, one per teacher
label), plus `labels.json` (label names in logits order) and `label.json`
(metadata, incl. "teachers"). It stays memory-mapped: rows are tokenised batch by
batch in a `set_transform`, and the collator pads each batch.
"""
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from rasa_kd.errors import UserError

REQUIRED_COLUMNS = ("text", "intent", "logits")


class Transfer:
    """An opened transfer set: `dataset` (memory-mapped), `labels`, `meta` (label.json)."""

    def __init__(self, path: Path, dataset, labels: List[str], meta: Dict):
        self.path, self.dataset, self.labels, self.meta = path, dataset, labels, meta

    def texts(self, batch_size: int = 10_000) -> Iterator[str]:
        for batch in self.dataset.select_columns(["text"]).iter(batch_size=batch_size):
            yield from batch["text"]

    def original_texts(self) -> List[str]:
        """The training sentences among the rows (source `original`)."""
        if "source" not in self.dataset.column_names:
            return []
        columns = self.dataset.select_columns(["text", "source"]).to_dict()
        return [text for text, source in zip(columns["text"], columns["source"]) if source == "original"]

    def source_counts(self) -> Dict[str, int]:
        if "source" not in self.dataset.column_names:
            return {}
        import pyarrow.compute as pc

        counts = pc.value_counts(self.dataset.data.column("source")).to_pylist()
        return {item["values"]: item["counts"] for item in counts}

    def teacher_paths(self) -> List[str]:
        teachers = self.meta.get("teachers") or ([self.meta["teacher"]] if self.meta.get("teacher") else [])
        return [str(t) for t in teachers]


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the {what} ({type(error).__name__})") from error


def open_transfer(path) -> Transfer:
    """Open and check a labelled transfer set; every problem is one UserError line."""
    import datasets

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: transfer set folder not found (make it with `rasa-kd label`)")
    labels_path = path / "labels.json"
    if not labels_path.is_file():
        raise UserError(f"{path}: not a labelled transfer set (no labels.json; run `rasa-kd label`)")
    labels = _read_json(labels_path, "label names")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise UserError(f"{labels_path}: expected a JSON list of label names")
    if len(set(labels)) != len(labels):
        raise UserError(f"{labels_path}: label names repeat")
    meta = _read_json(path / "label.json", "metadata") if (path / "label.json").is_file() else {}
    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as error:  # datasets raises FileNotFoundError, ValueError, ArrowInvalid ...
        raise UserError(f"{path}: cannot open the Arrow transfer set ({type(error).__name__})") from error
    if isinstance(dataset, datasets.DatasetDict):
        raise UserError(f"{path}: expected one Arrow dataset, found splits {list(dataset)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise UserError(f"{path}: transfer set lacks column(s) {', '.join(missing)} (was it labelled?)")
    if len(dataset) == 0:
        raise UserError(f"{path}: the transfer set is empty")
    width = len(dataset[0]["logits"])
    if width != len(labels):
        raise UserError(f"{path}: labels.json names {len(labels)} labels but the logits have {width} columns; "
                        f"the label order does not match the logits (re-run `rasa-kd label`)")
    check_gold_intents(dataset, labels, path)
    return Transfer(path, dataset, labels, meta)


def check_gold_intents(dataset, labels: Sequence[str], path: Path) -> None:
    import pyarrow.compute as pc

    intents = set(pc.unique(dataset.data.column("intent")).to_pylist()) - {"", None}
    unknown = sorted(intents - set(labels))
    if unknown:
        raise UserError(f"{path}: gold intents not among labels.json: {', '.join(unknown[:10])}")


def check_labels_known(examples, labels: Sequence[str], path: Path) -> None:
    """Every intent of `examples` (read from `path`) must be one of the student's labels."""
    unknown = sorted({e.intent for e in examples} - set(labels))
    if unknown:
        raise UserError(f"{path}: intents the student does not know (not in the transfer set's "
                        f"labels.json): {', '.join(unknown[:10])}" + (" ..." if len(unknown) > 10 else ""))


def word_counts(texts) -> Counter:
    from rasa_kd.students.tokenizers import split_words

    counts = Counter()
    for text in texts:
        counts.update(split_words(text)[0])
    return counts


class Encoder:
    """The `set_transform` function: a batch of rows -> token ids, teacher logits, gold ids."""

    def __init__(self, tokenizer, labels: Sequence[str]):
        self.tokenizer = tokenizer
        self.label_ids = {label: i for i, label in enumerate(labels)}

    def __call__(self, batch: Dict[str, list]) -> Dict[str, list]:
        encoded = self.tokenizer(batch["text"])
        lengths = encoded["attention_mask"].sum(axis=1)
        out = {"input_ids": [row[:n].tolist() for row, n in zip(encoded["input_ids"], lengths)],
               "gold": [self.label_ids.get(intent or "", -1) for intent in batch["intent"]]}
        if "logits" in batch:
            out["teacher_logits"] = [list(map(float, row)) for row in batch["logits"]]
        return out


class Collator:
    """Pads `input_ids` to the longest row; tensors for ids, mask, teacher logits and gold ids."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: List[Dict]) -> Dict:
        import torch

        length = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row["input_ids"])] = torch.tensor(row["input_ids"], dtype=torch.long)
            mask[i, :len(row["input_ids"])] = 1
        batch = {"input_ids": ids, "attention_mask": mask,
                 "gold": torch.tensor([r["gold"] for r in rows], dtype=torch.long)}
        if "teacher_logits" in rows[0]:
            batch["teacher_logits"] = torch.tensor([r["teacher_logits"] for r in rows], dtype=torch.float32)
        return batch


def training_dataset(transfer: Transfer, tokenizer):
    dataset = transfer.dataset.select_columns(list(REQUIRED_COLUMNS))
    dataset.set_transform(Encoder(tokenizer, transfer.labels))
    return dataset


def examples_dataset(examples, tokenizer, labels: Sequence[str]):
    """A small in-memory dataset of NLU examples (dev/test), transformed like the transfer set."""
    import datasets

    dataset = datasets.Dataset.from_dict({"text": [e.text for e in examples], "intent": [e.intent for e in examples]})
    dataset.set_transform(Encoder(tokenizer, labels))
    return dataset


def read_split(path: Optional[Path], labels: Sequence[str]) -> Optional[list]:
    """Examples of a dev/test NLU file, checked against the labels; None without a path."""
    if path is None:
        return None
    from rasa_kd.nlu_io import read_examples

    examples = read_examples(path)
    if not examples:
        raise UserError(f"{path}: no examples")
    check_labels_known(examples, labels, path)
    return examples


def texts_and_intents(examples) -> Tuple[List[str], List[str]]:
    return [e.text for e in examples], [e.intent for e in examples]
