"""Feeding a labelled transfer set (opened with `rasa_kd.formats.transfer_set.open_transfer`) and NLU
examples to the Trainer without copying them into memory: rows are tokenised batch by
batch in a `set_transform`, and the collator pads each batch.

Entity tags: on a transfer set with the teacher's tags, each student piece's target is the
teacher's tag logits of the piece under its first character (`covering_pieces`); special
tokens have none (`tag_mask` 0). The original sentences of a version-2 transfer set and the dev
examples carry gold tag ids per piece (`piece_tags`, every piece labelled), IGNORE where the
entities are unknown (augmented sentences, sentences held out of the transfer set).
"""
import json
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from rasa_kd.errors import UserError
from rasa_kd.formats.nlu_yaml import Example, read_examples
from rasa_kd.formats.transfer_set import (ENTITIES, INTENT, LOGITS, OUTLIER, TAG_LOGITS, TAG_SPANS, TEXT, VECTORS,
                                          TransferSet, sources_of)
from rasa_kd.nlu_data.entity_tags import IGNORE, covering_pieces, is_special, piece_tags
from rasa_kd.students.tokenizers import split_words

REQUIRED_COLUMNS = (TEXT, INTENT, LOGITS)


def check_labels_known(examples, labels: Sequence[str], path: Path) -> None:
    """Every intent of `examples` (read from `path`) must be one of the student's labels."""
    unknown = sorted({e.intent for e in examples} - set(labels))
    if unknown:
        raise UserError(f"{path}: intents the student does not know (not in the transfer set's "
                        f"labels.json): {', '.join(unknown[:10])}" + (" ..." if len(unknown) > 10 else ""))


def word_counts(texts) -> Counter:
    counts = Counter()
    for text in texts:
        counts.update(split_words(text)[0])
    return counts


def piece_word_ids(offsets) -> List[Optional[int]]:
    """Every piece its own "word" (students are trained on every piece), specials none."""
    return [None if is_special(span, 0) else i for i, span in enumerate(offsets)]


class Encoder:
    """The `set_transform` function: a batch of rows -> token ids, teacher logits, gold ids (and,
    with `tags`, the teacher's tag logits per piece and/or the gold tag ids)."""

    def __init__(self, tokenizer, labels: Sequence[str], tags: Optional[Sequence[str]] = None):
        self.tokenizer = tokenizer
        self.label_ids = {label: i for i, label in enumerate(labels)}
        self.tags = tags

    def __call__(self, batch: Dict[str, list]) -> Dict[str, list]:
        encoded = self.tokenizer(batch["text"])
        lengths = encoded["attention_mask"].sum(axis=1)
        out = {"input_ids": [row[:n].tolist() for row, n in zip(encoded["input_ids"], lengths)],
               "gold": [self.label_ids.get(intent or "", -1) for intent in batch["intent"]]}
        if "logits" in batch:
            out["teacher_logits"] = [list(map(float, row)) for row in batch["logits"]]
        if VECTORS in batch:
            out["teacher_vectors"] = [list(map(float, row)) for row in batch[VECTORS]]
        offsets = [row[:n] for row, n in zip(encoded["offsets"], lengths)]
        if self.tags and TAG_LOGITS in batch:
            out["teacher_tags"], out["tag_mask"] = zip(*[self.teacher_tags(spans, logits, teacher_spans) for
                                                         spans, logits, teacher_spans in
                                                         zip(offsets, batch[TAG_LOGITS], batch[TAG_SPANS])])
        if self.tags and ENTITIES in batch:
            out["gold_tags"] = [self.gold_tags(spans, entities) for spans, entities in zip(offsets, batch[ENTITIES])]
        return out

    def teacher_tags(self, spans, logits, teacher_spans) -> Tuple[List[List[float]], List[int]]:
        import numpy as np

        logits = np.asarray(logits, dtype=np.float32).reshape(-1, len(self.tags))
        found = covering_pieces(spans, teacher_spans)
        keep = np.array([index >= 0 and not is_special(span, 0) for index, span in zip(found, spans)], dtype=bool)
        rows = np.zeros((len(spans), len(self.tags)), dtype=np.float32)
        rows[keep] = logits[found[keep]]
        return rows.tolist(), keep.astype(int).tolist()

    def gold_tags(self, spans, entities: Optional[str]) -> List[int]:
        """Gold entities (JSON; None or null: unknown) as a tag id per piece."""
        known = None if entities is None else json.loads(entities)
        if known is None:
            return [IGNORE] * len(spans)
        return piece_tags(spans, piece_word_ids(spans), known, self.tags, "all")


class Collator:
    """Pads `input_ids` to the longest row; tensors for ids, mask, teacher logits (and sentence
    vectors) and gold ids (and teacher tags [n, length, tags] with their mask, or gold tag ids
    padded with IGNORE)."""

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
        for key in ("teacher_logits", "teacher_vectors"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows], dtype=torch.float32)
        if "teacher_tags" in rows[0]:
            width = len(rows[0]["teacher_tags"][0])  # every text has at least one position
            tags = torch.zeros((len(rows), length, width), dtype=torch.float32)
            tag_mask = torch.zeros((len(rows), length), dtype=torch.long)
            for i, row in enumerate(rows):
                tags[i, :len(row["teacher_tags"])] = torch.tensor(row["teacher_tags"], dtype=torch.float32)
                tag_mask[i, :len(row["tag_mask"])] = torch.tensor(row["tag_mask"], dtype=torch.long)
            batch["teacher_tags"], batch["tag_mask"] = tags, tag_mask
        if "gold_tags" in rows[0]:
            batch["gold_tags"] = torch.tensor([r["gold_tags"] + [IGNORE] * (length - len(r["gold_tags"]))
                                               for r in rows], dtype=torch.long)
        return batch


def training_dataset(transfer: TransferSet, tokenizer, vectors: bool = False):
    """The transfer set encoded for training; `vectors`: with the teacher's sentence vectors."""
    gold_entities = [ENTITIES] if ENTITIES in transfer.dataset.column_names else []  # version 2 on
    columns = list(REQUIRED_COLUMNS) + ([TAG_LOGITS, TAG_SPANS, *gold_entities] if transfer.tags else [])
    columns += [VECTORS] if vectors else []
    dataset = transfer.dataset.select_columns(columns)
    dataset.set_transform(Encoder(tokenizer, transfer.labels, transfer.tags))
    return dataset


def examples_dataset(examples, tokenizer, labels: Sequence[str], tags: Optional[Sequence[str]] = None):
    """A small in-memory dataset of NLU examples (dev/test), transformed like the transfer set;
    with `tags`, their gold entities (an example's `entities` None: unknown)."""
    import datasets

    dataset = datasets.Dataset.from_dict({"text": [e.text for e in examples], "intent": [e.intent for e in examples],
                                          ENTITIES: [json.dumps(e.entities) for e in examples]})
    dataset.set_transform(Encoder(tokenizer, labels, tags))
    return dataset


def read_split(path: Optional[Path], labels: Sequence[str]) -> Optional[list]:
    """Examples of a dev/test NLU file, checked against the labels; None without a path."""
    if path is None:
        return None
    examples = read_examples(path)
    if not examples:
        raise UserError(f"{path}: no examples")
    check_labels_known(examples, labels, path)
    return examples


def texts_and_intents(examples) -> Tuple[List[str], List[str]]:
    return [e.text for e in examples], [e.intent for e in examples]


def hold_out(transfer: TransferSet, share: float, most: int, seed: int) -> List[Example]:
    """Takes a random `share` (at most `most`) of the augmented sentences out of `transfer.dataset`
    and returns them as examples labelled with the teacher's top intent (originals stay: they
    are the only gold the student sees; outlier sentences stay: most have flat targets, no intent)."""
    import numpy as np

    dataset = transfer.dataset
    augmented = [i for i, source in enumerate(sources_of(dataset)) if source not in ("original", OUTLIER)]
    n = min(most, int(share * len(augmented)))
    if not n:
        return []
    chosen = set(np.random.default_rng(seed).choice(augmented, n, replace=False).tolist())
    rows = dataset.select(sorted(chosen)).select_columns([TEXT, LOGITS]).to_dict()
    transfer.dataset = dataset.select([i for i in range(len(dataset)) if i not in chosen]).flatten_indices()
    # entities None: unknown (the teacher's tags are not gold), left out of the entity score
    return [Example(text, transfer.labels[int(np.argmax(logits))], None)
            for text, logits in zip(rows[TEXT], rows[LOGITS])]
