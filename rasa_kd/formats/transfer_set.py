"""The transfer set: the sentences a student learns the teacher from.

Format (a folder; `datasets.Dataset.save_to_disk`, memory-mapped Arrow):

  column   type                 meaning
  text     string               the sentence
  source   string               `original` (a training sentence) | `rules` (Tang et al.
                                2019 rule-based augmentation) | `lm` (sampled from a
                                fine-tuned language model) | `outlier` (a generic sentence
                                from another domain, rasa_kd.transfer.outliers)
  parent   int64                index of the training sentence it came from (originals:
                                their own index), -1 when there is none (lm, outlier)
  intent   string               gold intent of originals, "" for generated sentences
  entities string (JSON), null  gold entities of originals as Rasa dicts (start, end, entity[,
                                value]), "[]" without any; null for generated sentences
  logits   list<float32>        only after `rasa-kd label`: one teacher logit per label,
                                in the order of the folder's labels.json; an outlier row far
                                from the training sentences has all equal (their mean: flat)
  tag_logits  list<list<float32>>  only after `rasa-kd label` with a joint teacher (one with
                                an entity tag head): per piece of the (first) tagging teacher's
                                tokenizer, special tokens left out, one logit per tag of tags.json
  tag_spans   list<list<int32>>    the character span [start, end] of each of those pieces
  vectors  list<float32>        only after `rasa-kd label --vectors`: the teacher's sentence
                                vector (what its classifier reads; an ensemble's concatenated),
                                for students that also learn it (`rasa-kd distil --vector-weight`)

A masked word or piece is written `[MASK]` (`MASK`): every teacher's tokenizer reads it as
its mask token (BERT-style ones have it; the multilingual teacher's adds it), and a student
made from the teacher's pieces keeps it.

Originals come first, in the order of the training file as Rasa loads it, so that
`parent` indexes rows 0..n_original-1. Every `text` is unique; no text equals (after
whitespace and case normalisation) a sentence of the excluded dev/test files.

`open_transfer(path)` is the one reader of this format (augment's output, label's input
and output, distil's input, the analysis).

Metadata files next to the Arrow files:
  transfer.json   {"format": "rasa-kd-transfer", "version": 1, "size", "counts" (by source),
                   "seed", "method", "params", "train", "exclude", ...}   (from augment)
  labels.json     teacher label names, the logits order                   (from label)
  tags.json       entity tag names, the tag_logits order (joint teachers)  (from label)
  label.json      {"teachers", "rows", "sentences_per_s", "seconds", ...} (from label)
Versions: transfer.json's "version" is 2 from the `entities` column on (a version-1 set, without
it, reads as before: its students learn the teacher's tags alone); label.json's "version" is 2 in a set with entity tags; an intent-only set (as every
set labelled before them: no version, no tags.json, no tag columns) reads as before.
"""
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from rasa_kd.errors import UserError

FORMAT = "rasa-kd-transfer"
VERSION = 2
MASK = "[MASK]"
META_FILE = "transfer.json"
LABELS_FILE = "labels.json"
TAGS_FILE = "tags.json"
LABEL_VERSION = 2
LABEL_META_FILE = "label.json"

TEXT, SOURCE, PARENT, INTENT, LOGITS, ENTITIES = "text", "source", "parent", "intent", "logits", "entities"
TAG_LOGITS, TAG_SPANS = "tag_logits", "tag_spans"
VECTORS = "vectors"
COLUMNS = (TEXT, SOURCE, PARENT, INTENT)
OUTLIER = "outlier"
SOURCES = ("original", "rules", "lm", OUTLIER)
NO_PARENT = -1


def features(with_logits: bool = False):
    """The `datasets.Features` of a transfer set (with the logits column after labelling)."""
    from datasets import Features, List, Value

    spec = {TEXT: Value("string"), SOURCE: Value("string"), PARENT: Value("int64"), INTENT: Value("string"),
            ENTITIES: Value("string")}
    if with_logits:
        spec[LOGITS] = List(Value("float32"))
    return Features(spec)


def normalised_key(text: str) -> str:
    """The key two sentences are "the same" by: collapsed whitespace, case-folded."""
    return " ".join(text.split()).casefold()


class TransferSet:
    """An opened transfer set: `dataset` (memory-mapped Arrow), `labels` (labels.json, the logits'
    order; None before labelling), `meta` (label.json) and `augment_meta` (transfer.json)."""

    def __init__(self, path: Path, dataset, labels: Optional[List[str]], meta: Dict, augment_meta: Dict,
                 tags: Optional[List[str]] = None):
        self.path, self.dataset, self.labels, self.meta, self.augment_meta = path, dataset, labels, meta, augment_meta
        self.tags = tags  # tags.json: entity tag names, the tag_logits order; None without entity tags

    def texts(self, batch_size: int = 10_000) -> Iterator[str]:
        for batch in self.dataset.select_columns([TEXT]).iter(batch_size=batch_size):
            yield from batch[TEXT]

    def original_texts(self) -> List[str]:
        """The training sentences among the rows (source `original`)."""
        if SOURCE not in self.dataset.column_names:
            return []
        columns = self.dataset.select_columns([TEXT, SOURCE]).to_dict()
        return [text for text, source in zip(columns[TEXT], columns[SOURCE]) if source == "original"]

    def source_counts(self) -> Dict[str, int]:
        if SOURCE not in self.dataset.column_names:
            return {}
        return dict(Counter(sources_of(self.dataset)))

    def teacher_paths(self) -> List[str]:
        teachers = self.meta.get("teachers") or ([self.meta["teacher"]] if self.meta.get("teacher") else [])
        return [str(t) for t in teachers]


def sources_of(dataset) -> List[Optional[str]]:
    """Each row's source, read through the dataset's indices (`dataset.data` alone ignores a
    `select`); None for every row of a set without the column."""
    if SOURCE not in dataset.column_names:
        return [None] * len(dataset)
    return dataset.select_columns([SOURCE])[SOURCE]


def _read_json(file: Path, what: str):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{file}: cannot read the {what} ({type(error).__name__})") from error


def read_meta(path) -> Dict:
    """transfer.json (what `rasa-kd augment` recorded); {} when absent."""
    file = Path(path) / META_FILE
    return _read_json(file, "transfer-set metadata") if file.is_file() else {}


def read_labels(path, file_name: str = LABELS_FILE) -> List[str]:
    """labels.json: the label names in the order of the logits columns (tags.json: the tag names)."""
    file = Path(path) / file_name
    if not file.is_file():
        raise UserError(f"{path}: not a labelled transfer set (no {file_name}; run `rasa-kd label`)")
    labels = _read_json(file, "label names")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise UserError(f"{file}: expected a JSON list of label names")
    if len(set(labels)) != len(labels):
        raise UserError(f"{file}: label names repeat")
    return labels


def read_tags(path) -> Optional[List[str]]:
    """tags.json, the tag names of a joint teacher's folder or of the set it labelled; None
    without one (an intent-only teacher or set)."""
    return read_labels(path, TAGS_FILE) if (Path(path) / TAGS_FILE).is_file() else None


def write_labels(path, labels: Sequence[str], file_name: str = LABELS_FILE) -> None:
    """labels.json (a transfer set's or a teacher's): the label names in the order of the logits
    (read back by read_labels)."""
    (Path(path) / file_name).write_text(json.dumps(list(labels), indent=1, ensure_ascii=False) + "\n",
                                        encoding="utf-8")


def write_tags(path, tags: Sequence[str]) -> None:
    """tags.json: the tag names in the order of the tag logits (read back by read_tags)."""
    write_labels(path, tags, TAGS_FILE)


def open_transfer(path, labelled: bool = False, require: Sequence[str] = ()) -> TransferSet:
    """Open a transfer-set folder (memory-mapped) and check it; every problem is one UserError line.

    Only `text` is required (any Arrow dataset with a text column can be labelled);
    `require` names further columns. `labelled` also requires labels.json, the
    `intent` and `logits` columns, one logit per label and gold intents among the labels.
    """
    import datasets

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: transfer set folder not found (make one with `rasa-kd augment`)")
    labels = read_labels(path) if labelled else None
    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as error:  # datasets raises FileNotFoundError, ValueError, ArrowInvalid ...
        raise UserError(f"{path}: not a saved Arrow dataset ({type(error).__name__}; "
                        f"make one with `rasa-kd augment`)") from error
    if isinstance(dataset, datasets.DatasetDict):
        raise UserError(f"{path}: expected one Arrow dataset, found splits {list(dataset)}")
    needed = [TEXT, *require, *([INTENT, LOGITS] if labelled else [])]
    missing = [c for c in dict.fromkeys(needed) if c not in dataset.column_names]
    if missing:
        raise UserError(f"{path}: transfer set lacks column(s) {', '.join(missing)} "
                        f"(has {', '.join(dataset.column_names) or 'none'})")
    if dataset.features[TEXT] != datasets.Value("string"):
        raise UserError(f"{path}: column text must hold strings, not {dataset.features[TEXT]}")
    if len(dataset) == 0:
        raise UserError(f"{path}: the transfer set is empty")
    if dataset.data.column(TEXT).null_count:
        raise UserError(f"{path}: column text has {dataset.data.column(TEXT).null_count} empty (null) rows")
    tags = read_tags(path) if labelled else None
    if labelled:
        check_logits(dataset, labels, path)
        check_tags(dataset, tags, path)
    meta = _read_json(path / LABEL_META_FILE, "labelling metadata") if (path / LABEL_META_FILE).is_file() else {}
    return TransferSet(path, dataset, labels, meta, read_meta(path), tags)


def check_logits(dataset, labels: Sequence[str], path: Path) -> None:
    """One logit per label, and every gold intent among the labels."""
    import pyarrow.compute as pc

    width = len(dataset[0][LOGITS])
    if width != len(labels):
        raise UserError(f"{path}: labels.json names {len(labels)} labels but the logits have {width} columns; "
                        f"the label order does not match the logits (re-run `rasa-kd label`)")
    intents = set(pc.unique(dataset.data.column(INTENT)).to_pylist()) - {"", None}
    unknown = sorted(intents - set(labels))
    if unknown:
        raise UserError(f"{path}: gold intents not among labels.json: {', '.join(unknown[:10])}")


def check_tags(dataset, tags: Optional[Sequence[str]], path: Path) -> None:
    """tags.json and the tag columns come together, one tag logit per tag and one span per piece."""
    present = [c for c in (TAG_LOGITS, TAG_SPANS) if c in dataset.column_names]
    if tags is None and not present:
        return
    if tags is None or len(present) < 2:
        raise UserError(f"{path}: entity tags need tags.json and the columns {TAG_LOGITS} and {TAG_SPANS} "
                        f"together (re-run `rasa-kd label`)")
    first = dataset[0]
    if first[TAG_LOGITS] and len(first[TAG_LOGITS][0]) != len(tags):
        raise UserError(f"{path}: tags.json names {len(tags)} tags but the tag logits have "
                        f"{len(first[TAG_LOGITS][0])} columns (re-run `rasa-kd label`)")
    if len(first[TAG_LOGITS]) != len(first[TAG_SPANS]):
        raise UserError(f"{path}: tag logits and tag spans differ in length (re-run `rasa-kd label`)")
