"""Rasa NLU YAML in and out, with exact round trips of raw text.

Reading uses Rasa's own loader (`rasa.shared.nlu.training_data.loading.load_data`),
writing uses Rasa's own `RasaYAMLWriter`, with one change: how an example's text is
rendered. Rasa's markup has no escape character, so raw research sentences such as
``see [1](2)`` would be read back as entity annotations. Every ``[`` outside an
entity is therefore written as ``[[][]``: Rasa's entity regex reads that as the
text ``[`` annotated with an empty list of entities, so the loader returns the
original character and no entity. With no other ``[`` left in the line, nothing
else in the raw text (``]``, ``(``, ``{``, ``:``, quotes, ``#``) can start markup.
"""
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import rasa.shared.utils.io
from rasa.shared.constants import LATEST_TRAINING_DATA_FORMAT_VERSION
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.training_data.formats.rasa_yaml import KEY_INTENT, KEY_INTENT_EXAMPLES, KEY_NLU, RasaYAMLWriter
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.validation import KEY_TRAINING_DATA_FORMAT_VERSION
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from rasa_kd.errors import UserError

LITERAL_OPEN_BRACKET = "[[][]"
# Rasa splits an `examples: |` block with str.splitlines(), which breaks on all of these.
LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")


@dataclass
class Example:
    """One NLU example: raw text, intent name, entities as Rasa dicts (start, end, entity[, value])."""

    text: str
    intent: str
    entities: List[Dict[str, Any]] = field(default_factory=list)


def escape_text(text: str) -> str:
    return text.replace("[", LITERAL_OPEN_BRACKET)


def _entity_markup(surface: str, entities: Sequence[Dict[str, Any]]) -> str:
    if "]" in surface:
        raise ValueError(f"entity text {surface!r} contains ']', which Rasa markup cannot hold")
    first = entities[0]
    plain = (
        len(entities) == 1
        and first.get("value", surface) == surface
        and not first.get("role")
        and not first.get("group")
        and not set(first["entity"]) & set(":)")
    )
    if plain:
        return f"[{surface}]({first['entity']})"
    dicts = []
    for entity in entities:
        attrs = {"entity": entity["entity"]}
        for key in ("value", "role", "group"):
            if entity.get(key) not in (None, "") and not (key == "value" and entity[key] == surface):
                attrs[key] = entity[key]
        dicts.append(json.dumps(attrs, ensure_ascii=False))
    if any("}" in d[1:-1] or "]" in d for d in dicts):
        raise ValueError(f"entity attributes {dicts} contain '}}' or ']', which Rasa markup cannot hold")
    return f"[{surface}]{dicts[0]}" if len(dicts) == 1 else f"[{surface}][{', '.join(dicts)}]"


def render_example(text: str, entities: Iterable[Dict[str, Any]] = ()) -> str:
    """The Rasa YAML line for `text` with `entities`; `load_data` reads back exactly `text`."""
    by_span: Dict[tuple, List[Dict[str, Any]]] = OrderedDict()
    for entity in sorted(entities, key=lambda e: (e["start"], e["end"])):
        by_span.setdefault((entity["start"], entity["end"]), []).append(entity)
    parts, pos = [], 0
    for (start, end), group in by_span.items():
        if start < pos or not 0 <= start < end <= len(text):
            raise ValueError(f"entity span {start}:{end} overlaps another or lies outside the text")
        parts.append(escape_text(text[pos:start]))
        parts.append(_entity_markup(text[start:end], group))
        pos = end
    parts.append(escape_text(text[pos:]))
    return "".join(parts)


def _render_message(message: Dict[str, Any]) -> str:
    entities = [e for e in message.get("entities", []) if "start" in e and "end" in e]
    return render_example(message.get("text", ""), entities)


# Characters YAML forbids in a file (its printable set, minus what we already turned into spaces).
NON_PRINTABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def _quote_non_printable(nlu_items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rasa's writer emits examples as a literal block, where YAML forbids control characters
    (CoLA has backspaces). Such a block is written double-quoted instead, with escapes."""

    def quoted(value: str) -> str:
        return DoubleQuotedScalarString(str(value)) if NON_PRINTABLE.search(value) else value

    for item in nlu_items:
        examples = item.get("examples")
        if isinstance(examples, str):
            item["examples"] = quoted(examples)
        for example in examples if isinstance(examples, list) else []:
            example["text"] = quoted(example["text"])
    return nlu_items


class EscapingYAMLWriter(RasaYAMLWriter):
    """Rasa's writer with markup-safe example text (see the module docstring)."""

    @classmethod
    def process_intents(cls, training_data):
        return cls.process_intent_examples(cls.prepare_training_examples(training_data))

    @classmethod
    def process_intent_examples(cls, examples_by_intent):
        return _quote_non_printable(cls.process_training_examples_by_key(
            examples_by_intent, KEY_INTENT, KEY_INTENT_EXAMPLES, _render_message
        ))


def write_examples(path: Path, examples: Iterable[Example]) -> int:
    """Write examples to a Rasa NLU YAML file, keeping duplicates and order within an intent.

    Duplicates are kept on purpose (benchmarks score on the original rows); Rasa drops
    them when it loads the file. Returns the number of examples written.
    """
    by_intent: Dict[str, List[Dict[str, Any]]] = OrderedDict()
    count = 0
    for example in examples:
        by_intent.setdefault(example.intent, []).append(
            {"text": example.text, "entities": example.entities}
        )
        count += 1
    content = OrderedDict()
    content[KEY_TRAINING_DATA_FORMAT_VERSION] = DoubleQuotedScalarString(LATEST_TRAINING_DATA_FORMAT_VERSION)
    content[KEY_NLU] = EscapingYAMLWriter.process_intent_examples(by_intent)
    rasa.shared.utils.io.write_yaml(content, path, True)
    return count


def write_training_data(path: Path, training_data) -> None:
    """Write a Rasa `TrainingData` (intents, synonyms, regexes, lookups) markup-safely."""
    EscapingYAMLWriter().dump(path, training_data)


def load_training_data(path) -> TrainingData:
    """Load a Rasa NLU file or folder with Rasa's own loader; problems become one-line errors."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: NLU data not found")
    try:
        data = load_data(str(path))
    except (RasaException, ValueError, OSError) as error:
        message = " ".join(str(error).split())
        raise UserError(f"{path}: not readable as Rasa NLU data: {message}") from error
    return data


def read_examples(path, require_intents: bool = True) -> List[Example]:
    """The intent examples of a Rasa NLU file or folder, as Rasa loads them (deduplicated).

    Retrieval intents (`faq/ask_x`) are returned under their base intent (`faq`), which is
    what Rasa's intent classifiers predict.
    """
    data = load_training_data(path)
    examples = [
        Example(m.get("text"), m.get("intent"), list(m.get("entities") or []))
        for m in data.intent_examples
    ]
    if require_intents and not examples:
        raise UserError(f"{path}: no intent examples found")
    return examples


def normalise_text(text: str) -> Optional[str]:
    """Text as it can live in Rasa YAML: line breaks become spaces, outer whitespace is dropped."""
    return LINE_BREAKS.sub(" ", text).strip(" \t\r\n")
