"""Entities as BIO tags over a tokenizer's pieces, and back to character spans: the one home of
the tag scheme that the joint teacher, the transfer set, the student's token head and the Rasa
entity extractor share.

Tags: `O`, then `B-<type>` and `I-<type>` for each entity type of the training data, types in
sorted order (`tag_names`). A piece is inside an entity when their character spans overlap; the
first piece inside an entity is its `B`, the others its `I`.

Labelling (which pieces a model is trained to tag, `LABELLINGS`):
  first  the first piece of each word carries the word's tag; the word's other pieces are
         ignored in the loss (IGNORE) and, when decoding, follow their first piece
  all    every piece carries its own tag, and decoding reads every piece
"Word" is what the tokenizer's pre-tokenizer calls one (`word_ids`); special tokens have none.
For text written without spaces (Thai, Chinese) a word can be a whole sentence: `all` then
gives entities within it, `first` cannot.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

OUTSIDE = "O"
IGNORE = -100  # the loss's ignore_index: a position without a tag
LABELLINGS = ("first", "all")
# all: the only one that tags inside words written without spaces (Thai, Chinese); first vs all
# on dev: benchmarks/entities.py (student-joint-first)
DEFAULT_LABELLING = "all"
Span = Tuple[int, int]


def entity_types(examples) -> List[str]:
    return sorted({entity["entity"] for example in examples for entity in example.entities})


def tag_names(types: Sequence[str]) -> List[str]:
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in types for prefix in "BI"]


def is_special(span: Span, word_id: Optional[int]) -> bool:
    """A position no tag belongs to: a special token (no word) or an empty span (padding, a bare
    SentencePiece word marker)."""
    return word_id is None or span[1] <= span[0]


def piece_tags(offsets: Sequence[Span], word_ids: Sequence[Optional[int]], entities: Sequence[Dict[str, Any]],
               names: Sequence[str], labelling: str) -> List[int]:
    """The tag id of each piece (IGNORE for special tokens and, with `first`, for later pieces of a word)."""
    index = {name: i for i, name in enumerate(names)}
    tags, previous_word, started = [], None, set()
    for span, word in zip(offsets, word_ids):
        if is_special(span, word):
            tags.append(IGNORE)
            continue
        later_piece = word == previous_word
        previous_word = word
        if labelling == "first" and later_piece:
            tags.append(IGNORE)
            continue
        inside = [n for n, e in enumerate(entities) if span[0] < e["end"] and span[1] > e["start"]]
        if not inside:
            tags.append(index[OUTSIDE])
            continue
        prefix = "I" if inside[0] in started else "B"
        started.add(inside[0])
        tags.append(index.get(f"{prefix}-{entities[inside[0]]['entity']}", index[OUTSIDE]))
    return tags


@dataclass
class Unit:
    """A word (labelling `first`) or a piece (`all`) with its tag distribution."""

    start: int
    end: int
    probabilities: np.ndarray


def units(probabilities: np.ndarray, offsets: Sequence[Span], word_ids: Sequence[Optional[int]],
          labelling: str) -> List[Unit]:
    """What decoding reads: per word its first piece's distribution, spanning all its pieces
    (`first`), or each piece (`all`)."""
    found: List[Unit] = []
    previous_word = None
    for row, (span, word) in enumerate(zip(offsets, word_ids)):
        if is_special(span, word):
            continue
        if labelling == "first" and word == previous_word and found:
            found[-1].end = max(found[-1].end, span[1])
        else:
            found.append(Unit(span[0], span[1], probabilities[row]))
        previous_word = word
    return found


def entity_spans(probabilities: np.ndarray, offsets: Sequence[Span], word_ids: Sequence[Optional[int]],
                 names: Sequence[str], labelling: str) -> List[Dict[str, Any]]:
    """Entities {start, end, entity, confidence} from per-piece tag probabilities [pieces, tags].
    BIO is read leniently: an `I-x` after `O` or another type starts an entity, as a `B-x` does;
    the confidence is the mean probability of the tags that make the entity."""
    entities: List[Dict[str, Any]] = []
    current: Optional[Dict[str, Any]] = None
    for unit in units(probabilities, offsets, word_ids, labelling):
        best = int(np.argmax(unit.probabilities))
        prefix, _, kind = names[best].partition("-")
        if prefix == OUTSIDE:
            current = None
            continue
        if current is not None and prefix == "I" and current["entity"] == kind:
            current["end"] = unit.end
            current["scores"].append(float(unit.probabilities[best]))
            continue
        current = {"start": unit.start, "end": unit.end, "entity": kind, "scores": [float(unit.probabilities[best])]}
        entities.append(current)
    for entity in entities:
        scores = entity.pop("scores")
        entity["confidence"] = float(sum(scores) / len(scores))
    return entities


def covering_pieces(spans: np.ndarray, other_spans: np.ndarray) -> np.ndarray:
    """For each span [n, 2], the index of the span of `other_spans` [m, 2] (sorted, disjoint) that
    covers or, in a gap, follows its first character; -1 where there is none (past the end)."""
    spans, other_spans = np.asarray(spans).reshape(-1, 2), np.asarray(other_spans).reshape(-1, 2)
    if not len(other_spans):
        return np.full(len(spans), -1, dtype=np.int64)
    found = np.searchsorted(other_spans[:, 1], spans[:, 0], side="right")
    return np.where(found < len(other_spans), found, -1)


def spread_to_pieces(logits: np.ndarray, offsets: Sequence[Span], word_ids: Sequence[Optional[int]],
                     names: Sequence[str]) -> np.ndarray:
    """Tag logits of a `first`-labelled model for every piece: a word's later pieces take its first
    (tagged) piece's logits with each `B-x` folded into `I-x` (they continue what the first began)."""
    out = np.array(logits, dtype=np.float32, copy=True)
    begins = [i for i, name in enumerate(names) if name.startswith("B-")]
    insides = [names.index("I-" + names[i][2:]) for i in begins]
    first = None
    for row, (span, word) in enumerate(zip(offsets, word_ids)):
        if is_special(span, word):
            continue
        if first is None or word_ids[first] != word:
            first = row
            continue
        source = logits[first]
        out[row] = source
        out[row, insides] = np.logaddexp(source[begins], source[insides])
        out[row, begins] = source.min() - 10.0  # a later piece never begins an entity
    return out
