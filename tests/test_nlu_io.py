"""Markup-safe Rasa YAML: whatever raw text we write, Rasa's own loader reads back exactly."""
import pytest

from rasa_kd.formats.nlu_yaml import Example, read_examples, render_example, write_examples

AWKWARD_TEXTS = [
    "a sentence with [brackets](x) inside",
    "[brackets]{\"entity\": \"city\"} and [lists][{\"entity\": \"a\"}]",
    "{braces} and \"double\" and 'single' quotes",
    "- a leading dash",
    "# not a comment: with a colon",
    "ประโยคภาษาไทย [วงเล็บ] (ไทย)",
    "sister\u00f0city",
    "José said [[nested]] ]] [[ [",
    "[", "]", "[[][]", "text with a back\x08space",
    "¿Cuándo suena la alarma? ✓ 🙂",
]


def test_awkward_text_round_trips_exactly(tmp_path):
    path = tmp_path / "nlu.yml"
    examples = [Example(text, "intent_a") for text in AWKWARD_TEXTS]
    write_examples(path, examples)
    loaded = read_examples(path)
    assert [e.text for e in loaded] == AWKWARD_TEXTS
    assert all(e.entities == [] for e in loaded)


def test_entities_survive_next_to_escaped_brackets(tmp_path):
    text = "wake me at 7am [tomorrow] in Bangkok"
    entities = [{"start": 11, "end": 14, "entity": "datetime", "value": "7am"},
                {"start": 29, "end": 36, "entity": "city", "value": "BKK"}]
    path = tmp_path / "nlu.yml"
    write_examples(path, [Example(text, "set_alarm", entities)])
    (loaded,) = read_examples(path)
    assert loaded.text == text
    spans = sorted((e["start"], e["end"], e["entity"], e["value"]) for e in loaded.entities)
    assert spans == [(11, 14, "datetime", "7am"), (29, 36, "city", "BKK")]


def test_duplicates_are_written_and_rasa_drops_them(tmp_path):
    path = tmp_path / "nlu.yml"
    write_examples(path, [Example("hi", "greet"), Example("hi", "greet"), Example("hello", "greet")])
    assert path.read_text().count("- hi\n") == 2
    assert [e.text for e in read_examples(path)] == ["hi", "hello"]


def test_render_rejects_overlapping_entities():
    with pytest.raises(ValueError):
        render_example("abcdef", [{"start": 0, "end": 3, "entity": "x"}, {"start": 2, "end": 5, "entity": "y"}])
