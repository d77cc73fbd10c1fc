"""`rasa-kd split`: stratified held-out splits of a Rasa NLU file.

Output folder: `train.yml`, `test.yml` (unless `--test-fraction 0`) and `dev.yml`
(with `--dev-fraction`), each a
Rasa NLU YAML file keeping entities; every intent keeps at least one training
example. Splits are made on Rasa's deduplicated examples, so no sentence is in two splits.
"""
import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from rasa_kd.errors import UserError
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
from rasa_kd.formats.outputs import atomic_output_dir
from rasa_kd.options import option

logger = logging.getLogger(__name__)


@dataclass
class SplitOptions:
    """`rasa-kd split`'s options; see the module docstring."""

    nlu: Path = option(help="Rasa NLU file or folder")
    out: Path = option(help="output folder (must be new or empty)")
    test_fraction: float = option(0.2, "share held out as test.yml")
    dev_fraction: float = option(0.0, "share held out as dev.yml (default 0: no dev file)")
    seed: int = option(42, "random seed")
    force: bool = option(False, "replace an output folder that has content")


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> Tuple[List[Example], List[Example]]:
    """(kept, held out): `fraction` of each intent's examples held out (rounded, at least one
    when the fraction is not 0); an intent keeps at least one example, so single-example
    intents are never held out."""
    if not 0 <= fraction < 1:
        raise UserError(f"split fraction must be at least 0 and below 1, got {fraction}")
    by_intent: Dict[str, List[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    kept, held_out = [], []
    for intent in sorted(by_intent):
        group = list(by_intent[intent])
        rng.shuffle(group)
        n_held = 0 if fraction == 0 or len(group) < 2 else min(len(group) - 1, max(1, round(fraction * len(group))))
        held_out.extend(group[:n_held])
        kept.extend(group[n_held:])
    return kept, held_out


def split_examples(examples: Sequence[Example], test_fraction: float, dev_fraction: float = 0.0,
                   seed: int = 42) -> Dict[str, List[Example]]:
    """{"test", "dev", "train"} (test and dev only when their fraction is not 0): the one
    split `rasa-kd split`, `rasa-kd pipeline` and the component distilling inside `rasa
    train` all make, so the same file and seed give the same splits everywhere."""
    rest, test = stratified_split(examples, test_fraction, seed)
    splits = {"test": test} if test_fraction else {}
    if dev_fraction:
        rest, splits["dev"] = stratified_split(rest, dev_fraction / (1 - test_fraction), seed + 1)
    splits["train"] = rest
    return splits


def split_nlu(nlu: Path, out: Path, test_fraction: float, dev_fraction: float = 0.0,
              seed: int = 42, force: bool = False) -> Dict[str, int]:
    splits = split_examples(read_examples(nlu), test_fraction, dev_fraction, seed)
    with atomic_output_dir(out, force) as folder:
        for name, split in splits.items():
            write_examples(folder / f"{name}.yml", split)
    counts = {name: len(split) for name, split in splits.items()}
    logger.info(f"{nlu} -> {out}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    return counts


def split_from_options(options: SplitOptions) -> Dict[str, int]:
    """Write the splits to options.out; returns the examples per split."""
    return split_nlu(options.nlu, options.out, options.test_fraction, options.dev_fraction, options.seed,
                     options.force)
