"""`rasa-kd convert`: research datasets in their original raw formats -> Rasa NLU YAML.

Output folder (written all-or-nothing):
  train.yml / dev.yml / test.yml   one Rasa NLU YAML file per split the source has
                                   (CoLA also: dev_in_domain.yml, dev_out_of_domain.yml;
                                   its dev.yml is GLUE's dev, the two combined)
  labels.yml                       intent name -> the source's original label
  conversion.json                  rows read, examples written, unique after Rasa's
                                   dedupe and label counts, per split

Text is kept exactly, except that line breaks become spaces and outer whitespace is
dropped (Rasa strips it). Every written file is read back with Rasa's loader and
compared with the source before the folder is published.
"""
import csv
import io
import json
import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import yaml

from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_kd.errors import UserError, at, require_dir, require_file
from rasa_kd.formats.nlu_yaml import Example, load_training_data, normalise_text, write_examples, write_training_data
from rasa_kd.formats.outputs import atomic_output_dir, check_output_dir
from rasa_kd.options import option

logger = logging.getLogger(__name__)

DATASETS = ("cola", "sst2", "trec", "sara", "mtod", "rasa", "csv")


@dataclass
class Split:
    name: str
    source: Path
    examples: List[Example] = field(default_factory=list)
    rows_read: int = 0
    training_data: object = None  # a Rasa TrainingData, for pass-through sources


@dataclass
class Conversion:
    splits: List[Split]
    labels: Dict[str, str]  # intent name -> original label


# ---------------------------------------------------------------- reading raw files


def decode_file(path: Path, encoding: str) -> Tuple[str, str]:
    """The file's text and the encoding used. `auto`: UTF-8, else latin-1 (never fails)."""
    raw = require_file(path).read_bytes()
    candidates = ["utf-8", "latin-1"] if encoding == "auto" else [encoding]
    for candidate in candidates:
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError as error:
            if encoding == "auto":
                continue
            line = raw[: error.start].count(b"\n") + 1
            raise UserError(f"{at(path, line)}: not valid {encoding} (byte 0x{raw[error.start]:02x}); "
                            f"try --encoding latin-1 or --encoding auto") from error
        except LookupError as error:
            raise UserError(f"unknown encoding {encoding!r}") from error
    raise AssertionError("latin-1 decodes every byte")


def read_lines(path: Path, encoding: str) -> Iterator[Tuple[int, str]]:
    """(line number, line) for each line, splitting on LF only (CRLF tolerated)."""
    text, used = decode_file(path, encoding)
    if used != "utf-8" and encoding == "auto":
        logger.warning(f"note: {path} is not UTF-8, read as {used}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    for number, line in enumerate(lines, start=1):
        yield number, line[:-1] if line.endswith("\r") else line


def split_columns(path: Path, number: int, line: str, expected: int, delimiter: str = "\t") -> List[str]:
    columns = line.split(delimiter)
    if len(columns) != expected:
        raise UserError(f"{at(path, number)}: expected {expected} tab-separated columns, found {len(columns)}")
    return columns


def clean_text(path: Path, number: int, text: str) -> str:
    text = normalise_text(text)
    if not text:
        raise UserError(f"{at(path, number)}: empty text")
    return text


def unknown_label(path: Path, number: int, label: str, known) -> UserError:
    shown = ", ".join(sorted(map(str, known))[:12])
    return UserError(f"{at(path, number)}: unknown label {label!r} (expected one of: {shown})")


def read_split(name: str, path: Path, encoding: str, parse: Callable[[Path, int, str], Example],
               header: bool = False) -> Split:
    split = Split(name, path)
    for number, line in read_lines(path, encoding):
        if header and number == 1:
            continue
        split.examples.append(parse(path, number, line))
        split.rows_read += 1
    return split


# ---------------------------------------------------------------- datasets


def convert_cola(source: Path, args) -> Conversion:
    names = {"1": "acceptable", "0": "unacceptable"}

    def parse(path, number, line):
        _, label, _, sentence = split_columns(path, number, line, 4)
        if label not in names:
            raise unknown_label(path, number, label, names)
        return Example(clean_text(path, number, sentence), names[label])

    files = [("train", "in_domain_train.tsv"), ("dev_in_domain", "in_domain_dev.tsv"),
             ("dev_out_of_domain", "out_of_domain_dev.tsv")]
    splits = [read_split(name, require_dir(source) / file, args.encoding, parse) for name, file in files]
    glue_dev = Split("dev", source / "in_domain_dev.tsv + out_of_domain_dev.tsv",
                     splits[1].examples + splits[2].examples, splits[1].rows_read + splits[2].rows_read)
    return Conversion(splits[:1] + [glue_dev] + splits[1:], {v: k for k, v in names.items()})


def convert_sst2(source: Path, args) -> Conversion:
    names = {"1": "positive", "0": "negative"}

    def parse(path, number, line):
        sentence, label = split_columns(path, number, line, 2)
        if label.strip() not in names:
            raise unknown_label(path, number, label, names)
        return Example(clean_text(path, number, sentence), names[label.strip()])

    files = [("train", "train.tsv"), ("dev", "dev.tsv"), ("test", "test-labeled.tsv")]
    splits = [read_split(name, require_dir(source) / file, args.encoding, parse, header=True)
              for name, file in files if (source / file).exists() or name == "train"]
    return Conversion(splits, {v: k for k, v in names.items()})


TREC_LABEL = re.compile(r"^([A-Z]+):(\S+)$")
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


def convert_trec(source: Path, args) -> Conversion:
    labels: Dict[str, str] = OrderedDict()

    def parse(path, number, line):
        label, _, question = line.partition(" ")
        match = TREC_LABEL.match(label)
        if not match or match.group(1) not in TREC_COARSE:
            raise unknown_label(path, number, label, [f"{c}:<fine>" for c in TREC_COARSE])
        coarse, fine = match.groups()
        intent = coarse if args.labels == "coarse" else f"{coarse}_{fine}"
        labels.setdefault(intent, coarse if args.labels == "coarse" else label)
        return Example(clean_text(path, number, question), intent)

    files = [("train", "train_5500.label"), ("test", "TREC_10.label")]
    splits = [read_split(name, require_dir(source) / file, args.encoding, parse) for name, file in files]
    return Conversion(splits, dict(sorted(labels.items())))


def read_sara_intents(path: Path, encoding: str) -> Dict[str, str]:
    intents = OrderedDict()
    for number, line in read_lines(require_file(path), encoding):
        intent_id, name = split_columns(path, number, line, 2)
        if not name.strip() or "/" in name or " " in name.strip():
            raise UserError(f"{at(path, number)}: {name!r} is not a usable intent name")
        intents[intent_id.strip()] = name.strip()
    return intents


def convert_sara(source: Path, args) -> Conversion:
    if not (require_dir(source) / "int_to_intent.tsv").exists():
        if any(source.rglob("*.yml")) or any(source.rglob("*.yaml")):
            return convert_rasa(source, args)
        raise UserError(f"{source}: neither int_to_intent.tsv (Sara TSV split) nor Rasa YAML files found")
    intents = read_sara_intents(source / "int_to_intent.tsv", args.encoding)

    def parse(path, number, line):
        intent_id, text = split_columns(path, number, line, 2)
        if intent_id.strip() not in intents:
            raise unknown_label(path, number, intent_id, intents)
        return Example(clean_text(path, number, text), intents[intent_id.strip()])

    splits = [read_split(name, source / f"{name}.tsv", args.encoding, parse)
              for name in ("train", "dev", "test") if (source / f"{name}.tsv").exists() or name == "train"]
    return Conversion(splits, {name: intent_id for intent_id, name in intents.items()})


def rasa_name(label: str) -> str:
    """A label as a Rasa intent or entity name: '/' would make a retrieval intent, so it becomes '_'."""
    return re.sub(r"[/\s]+", "_", label.strip())


def parse_mtod_slots(path: Path, number: int, spans: str, raw_text: str) -> List[Dict]:
    """PyText slot spans `start:end:slot,...` (character offsets into the raw utterance)."""
    offset = len(raw_text) - len(raw_text.lstrip())
    text = normalise_text(raw_text)
    entities = []
    for span in filter(None, spans.split(",")):
        match = re.match(r"^(-?\d+):(-?\d+):(.+)$", span)
        if not match:
            raise UserError(f"{at(path, number)}: slot span {span!r} is not start:end:slot")
        start, end = int(match.group(1)) - offset, int(match.group(2)) - offset
        if not 0 <= start < end <= len(text):
            # The release has a few such spans (e.g. es test '-2:30'); the example is kept.
            logger.warning(f"warning: {at(path, number)}: slot span {span!r} lies outside the utterance; "
                           f"the example is kept without this entity")
            continue
        # Rasa's markup cannot annotate a span with outer whitespace; trim it.
        surface = text[start:end]
        start += len(surface) - len(surface.lstrip())
        end -= len(surface) - len(surface.rstrip())
        entities.append({"start": start, "end": end, "value": text[start:end],
                         "entity": rasa_name(match.group(3))})
    return entities


def convert_mtod(source: Path, args) -> Conversion:
    labels: Dict[str, str] = OrderedDict()
    lang = args.lang or "en"
    folder = require_dir(require_dir(source) / lang, f"MTOD language folder ({lang})")

    def parse(path, number, line):
        intent, spans, utterance, _language, _tokens = split_columns(path, number, line, 5)
        if not re.match(r"^[A-Za-z_]+/[A-Za-z_]+$", intent):
            raise UserError(f"{at(path, number)}: unknown label {intent!r} (expected domain/intent)")
        name = rasa_name(intent)
        labels.setdefault(name, intent)
        text = clean_text(path, number, utterance)
        return Example(text, name, parse_mtod_slots(path, number, spans, utterance))

    files = [("train", f"train-{lang}.tsv"), ("dev", f"eval-{lang}.tsv"), ("test", f"test-{lang}.tsv")]
    splits = [read_split(name, folder / file, args.encoding, parse) for name, file in files
              if (folder / file).exists()]
    if not splits:
        raise UserError(f"{folder}: no MTOD files (train-{lang}.tsv, eval-{lang}.tsv, test-{lang}.tsv)")
    return Conversion(splits, dict(sorted(labels.items())))


def convert_rasa(source: Path, args) -> Conversion:
    """Rasa YAML passes through: a file, or a folder whose `tests/` subfolder is the test split."""

    if not source.exists():
        raise UserError(f"{source}: not found")
    test_files = sorted(p for p in source.rglob("*.y*ml") if "tests" in p.relative_to(source).parts) \
        if source.is_dir() else []
    train_files = [source] if source.is_file() else sorted(
        p for p in source.rglob("*.y*ml") if p not in test_files)
    splits = []
    for name, files in (("train", train_files), ("test", test_files)):
        if not files:
            continue
        data = TrainingData().merge(*[load_training_data(f) for f in files])
        examples = [Example(m.get("text"), full_intent(m), list(m.get("entities") or []))
                    for m in data.intent_examples]
        split = Split(name, source if source.is_file() else source / ("tests" if name == "test" else ""),
                      examples, sum(count_yaml_examples(f) for f in files), data)
        splits.append(split)
    if not splits or not splits[0].examples:
        raise UserError(f"{source}: no Rasa NLU intent examples found")
    labels = sorted({e.intent for s in splits for e in s.examples})
    return Conversion(splits, {label: label for label in labels})


def full_intent(message) -> str:
    """The intent as written in the YAML (`faq/ask_x` for a retrieval intent, not just `faq`)."""
    return message.get("intent_response_key") or message.get("intent")


def count_yaml_examples(path: Path) -> int:
    """Intent examples in a Rasa YAML file before Rasa drops duplicates."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not readable as YAML: {' '.join(str(error).split())}") from error
    count = 0
    for item in content.get("nlu", []) if isinstance(content, dict) else []:
        examples = item.get("examples") if isinstance(item, dict) and "intent" in item else None
        if isinstance(examples, str):
            count += sum(1 for line in examples.splitlines() if line.startswith("-"))
        elif isinstance(examples, list):
            count += len(examples)
    return count


def convert_csv(source: Path, args) -> Conversion:
    labels: Dict[str, str] = OrderedDict()
    files = [("train", source)] if source.is_file() else [
        (p.stem, p) for p in sorted(require_dir(source).iterdir())
        if p.stem in ("train", "dev", "test") and p.suffix in (".csv", ".tsv", ".txt")]
    if not files:
        raise UserError(f"{source}: no CSV file (a file, or a folder with train/dev/test .csv/.tsv)")
    splits = []
    for name, path in files:
        text, _ = decode_file(path, args.encoding)
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=args.delimiter)
        text_col, label_col = args.text_col, args.label_col
        by_name = not (text_col.isdigit() and label_col.isdigit())
        split = Split(name, path)
        for number, row in enumerate(rows, start=1):
            if number == 1 and (by_name or args.skip_header):
                if by_name:
                    missing = [c for c in (text_col, label_col) if c not in row]
                    if missing:
                        raise UserError(f"{at(path, 1)}: header has no column {missing[0]!r} (columns: {row})")
                    text_col, label_col = str(row.index(text_col)), str(row.index(label_col))
                continue
            needed = max(int(text_col), int(label_col)) + 1
            if len(row) < needed:
                raise UserError(f"{at(path, number)}: expected at least {needed} columns, found {len(row)}")
            label = row[int(label_col)].strip()
            if not label:
                raise UserError(f"{at(path, number)}: empty label")
            intent = re.sub(r"\s+", "_", label)  # '/' stays: Rasa reads it as a retrieval intent
            labels.setdefault(intent, label)
            split.examples.append(Example(clean_text(path, number, row[int(text_col)]), intent))
            split.rows_read += 1
        splits.append(split)
    return Conversion(splits, dict(sorted(labels.items())))


CONVERTERS = {"cola": convert_cola, "sst2": convert_sst2, "trec": convert_trec, "sara": convert_sara,
              "mtod": convert_mtod, "rasa": convert_rasa, "csv": convert_csv}


# ---------------------------------------------------------------- writing and checking


def write_split(split: Split, folder: Path) -> Dict:
    """Write one split, read it back with Rasa's loader and check the round trip."""
    path = folder / f"{split.name}.yml"
    if split.training_data is not None:
        write_training_data(path, split.training_data)
    else:
        write_examples(path, split.examples)
    loaded = load_training_data(path).intent_examples
    expected = {(e.text, e.intent) for e in split.examples}
    got = {(m.get("text"), full_intent(m)) for m in loaded}
    if got != expected:
        sample = sorted(expected ^ got)[:3]
        raise RuntimeError(f"round trip of {path.name} failed; differing examples: {sample}")
    return {
        "file": path.name,
        "source": str(split.source),
        "rows_read": split.rows_read,
        "examples_written": len(split.examples),
        "unique_after_rasa": len(loaded),
        "duplicates_removed_by_rasa": split.rows_read - len(loaded),
        "intents": len({e.intent for e in split.examples}),
        "label_counts": dict(Counter(e.intent for e in split.examples).most_common()),
    }


def print_report(dataset: str, out: Path, report: Dict) -> None:
    logger.info(f"{dataset} -> {out}")
    logger.info(f"{'split':<18} {'rows read':>10} {'written':>10} {'unique (Rasa)':>14} {'duplicates':>11} "
                f"{'intents':>8}")
    for s in report["splits"]:
        logger.info(f"{s['file'][:-4]:<18} {s['rows_read']:>10,} {s['examples_written']:>10,} "
                    f"{s['unique_after_rasa']:>14,} {s['duplicates_removed_by_rasa']:>11,} {s['intents']:>8}")
    for s in report["splits"]:
        counts = ", ".join(f"{k} {v:,}" for k, v in list(s["label_counts"].items())[:12])
        more = len(s["label_counts"]) - 12
        logger.info(f"  {s['file'][:-4]} labels: {counts}{f', … (+{more} more)' if more > 0 else ''}")


@dataclass
class ConvertOptions:
    """`rasa-kd convert`'s options; see the module docstring."""

    dataset: str = option(help="cola: CoLA raw TSVs; sst2: GLUE SST-2 TSVs; trec: TREC .label files; sara: the Sara "
                               "TSV split (or a Rasa YAML folder); mtod: multilingual task-oriented dialogue TSVs; "
                               "rasa: any Rasa NLU YAML file or folder (a tests/ subfolder becomes test.yml); csv: "
                               "any CSV/TSV", flags=("dataset",), choices=DATASETS)
    source: Path = option(help="the dataset's file or folder")
    out: Path = option(help="output folder (must be new or empty)")
    force: bool = option(False, "replace an output folder that has content")
    lang: Optional[str] = option(None, "mtod: language folder (default en)", choices=("en", "es", "th"))
    labels: str = option("coarse", "trec: 6 coarse classes (ABBR ...) or 50 fine ones (ABBR_abb ...)",
                         choices=("coarse", "fine"))
    text_col: str = option("text", "csv: text column, a header name or a 0-based index")
    label_col: str = option("label", "csv: label column, a header name or a 0-based index")
    delimiter: str = option(",", "csv: field delimiter (use $'\\t' for TSV)")
    skip_header: bool = option(False, "csv: skip a header row when columns are indices")
    encoding: str = option("auto", "input encoding; 'auto' reads UTF-8 and falls back to latin-1")


def convert(dataset: str, source, out, force: bool = False, **options) -> Dict:
    """Convert `dataset` from `source` into the folder `out`; returns the conversion report.
    `options`: the other fields of ConvertOptions (None keeps a default)."""

    args = ConvertOptions(dataset=dataset, source=Path(source), out=Path(out), force=force,
                          **{key: value for key, value in options.items() if value is not None})
    if dataset not in CONVERTERS:
        raise UserError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    out = Path(out)
    check_output_dir(out, force)
    conversion = CONVERTERS[dataset](Path(source), args)
    with atomic_output_dir(out, force) as folder:
        report = {"dataset": dataset, "source": str(source),
                  "splits": [write_split(split, folder) for split in conversion.splits]}
        with open(folder / "labels.yml", "w", encoding="utf-8") as f:
            yaml.safe_dump({"labels": conversion.labels}, f, allow_unicode=True, sort_keys=False)
        (folder / "conversion.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print_report(dataset, out, report)
    return report


def convert_from_options(options: ConvertOptions) -> Dict:
    return convert(options.dataset, options.source, options.out, force=options.force, encoding=options.encoding,
                   lang=options.lang, labels=options.labels, text_col=options.text_col,
                   label_col=options.label_col, delimiter=options.delimiter, skip_header=options.skip_header)
