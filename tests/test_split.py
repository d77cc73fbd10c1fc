"""`rasa-kd split`: stratified, disjoint held-out splits that keep entities."""
from pathlib import Path

from conftest import stage_parser
from rasa_kd import cli
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
from rasa_kd.nlu_data.split import SplitOptions, split_from_options, stratified_split
from rasa_kd.options import from_namespace


def test_split_is_stratified_disjoint_and_keeps_entities(tmp_path):
    examples = [Example(f"order {n} latte", "order",
                        [{"start": len(f"order {n} "), "end": len(f"order {n} latte"), "entity": "drink",
                          "value": "latte"}]) for n in range(20)]
    examples += [Example(f"hello number {n}", "greet") for n in range(10)] + [Example("bye", "bye")]
    write_examples(tmp_path / "nlu.yml", examples)
    assert cli.main(["split", "--nlu", str(tmp_path / "nlu.yml"), "--out", str(tmp_path / "out"),
                     "--test-fraction", "0.2", "--dev-fraction", "0.1"]) == 0
    splits = {name: read_examples(tmp_path / "out" / f"{name}.yml", require_intents=False)
              for name in ("train", "dev", "test")}
    texts = [e.text for split in splits.values() for e in split]
    assert len(texts) == len(set(texts)) == 31
    assert sum(e.intent == "order" for e in splits["test"]) == 4
    assert sum(e.intent == "greet" for e in splits["test"]) == 2
    assert [e.text for e in splits["train"] if e.intent == "bye"] == ["bye"]
    assert all(e.entities and e.entities[0]["value"] == "latte" for e in splits["test"] if e.intent == "order")


def test_zero_fraction_holds_nothing_out():
    examples = [Example(f"t{n}", "a") for n in range(5)]
    kept, held_out = stratified_split(examples, 0, seed=1)
    assert held_out == [] and sorted(e.text for e in kept) == [e.text for e in examples]


def test_option_defaults_are_the_command_line_defaults():
    parser = stage_parser("rasa_kd.nlu_data.split")
    parsed = from_namespace(SplitOptions, parser.parse_args(["--nlu", "n.yml", "--out", "o"]))
    assert parsed == SplitOptions(nlu=Path("n.yml"), out=Path("o"))


def test_split_from_options_holds_out_dev_and_test(tmp_path):
    write_examples(tmp_path / "nlu.yml", [Example(f"hello number {n}", "greet") for n in range(10)])
    counts = split_from_options(SplitOptions(nlu=tmp_path / "nlu.yml", out=tmp_path / "out", dev_fraction=0.2))
    assert counts == {"test": 2, "dev": 2, "train": 6}
