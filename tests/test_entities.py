"""Intents and entities: the default pipeline (one student distilled inside `rasa train nlu` for
both) and the `--no-entities` one (the student's token vectors handed to Rasa's CRF) train on a
tiny assistant, answer over HTTP with entity spans that match Rasa's tokens (punctuation, words
of several word pieces, non-ASCII text), and Rasa's entity report is read back per extractor."""
import json
from pathlib import Path

import pytest

import rasa_runner
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
from rasa_kd.pipeline import ENTITY_COMPONENTS, CRF_CLASSIFIER_KEYS, config_snippet

from test_rasa_train import CONFIG as INTENTS_CONFIG  # the in-`rasa train` student of the toy data

CONFIG = INTENTS_CONFIG.replace("policies: []", "{token_features}{entities}policies: []")
# Toppings of several word pieces for the tiny BERT (its vocabulary spells unknown words
# letter by letter), one with a non-ASCII letter, and cities after punctuation.
TOPPINGS = ["pepperoni", "mushrooms", "jalapeño", "cheese", "anchovies"]
CITIES = ["zürich", "lisbon", "são paulo"]
# Parsed by the tests and kept out of training: each value and each template is trained,
# never this pair.
HELD_OUT = [
    ("pizza with mushrooms please", "topping", "mushrooms"),      # several word pieces
    ("i want jalapeño pizza now", "topping", "jalapeño"),          # non-ASCII
    ("a slice, anchovies!", "topping", "anchovies"),              # punctuation around the entity
    ("forecast for zürich, please", "city", "zürich"),
    ("weather in são paulo?", "city", "são paulo"),               # two tokens, non-ASCII
]


def entity_examples():
    """Toppings and cities in four templates each, without the held-out sentences."""
    examples = []
    for i, topping in enumerate(TOPPINGS * 3):
        text = ["pizza with {} please", "a slice, {}!", "i want {} pizza now", "delivery of {}; thanks"][i % 4]
        start = text.index("{}")
        examples.append(Example(text.format(topping), "order_pizza",
                                [{"start": start, "end": start + len(topping), "value": topping,
                                  "entity": "topping"}]))
    for i, city in enumerate(CITIES * 4):
        text = ["weather in {}?", "forecast for {}, please", "rain today in {}!", "is it sunny in {} now"][i % 4]
        start = text.index("{}")
        examples.append(Example(text.format(city), "weather",
                                [{"start": start, "end": start + len(city), "value": city, "entity": "city"}]))
    held_out = {text for text, _, _ in HELD_OUT}
    return [example for example in examples if example.text not in held_out]


@pytest.fixture(scope="module")
def assistant(tmp_path_factory, tiny_teacher_dir, toy_nlu):
    folder = tmp_path_factory.mktemp("entities")
    nlu = folder / "nlu.yml"
    write_examples(nlu, read_examples(toy_nlu["train"]) + entity_examples())
    (folder / "config.yml").write_text(CONFIG.format(teacher=tiny_teacher_dir, token_features=CRF_CLASSIFIER_KEYS,
                                                     entities=ENTITY_COMPONENTS))
    model = rasa_runner.train_nlu(folder / "config.yml", nlu, folder / "models", "entities", cwd=folder)
    return folder, model


def rasa_token_spans(text: str):
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.training_data.message import Message

    message = Message(data={"text": text})
    WhitespaceTokenizer(WhitespaceTokenizer.get_default_config()).process([message])
    return [(token.start, token.end) for token in message.get("text_tokens")]


@pytest.mark.parametrize("text, entity, value", HELD_OUT)
def test_entities_over_http_align_with_rasa_tokens(server, text, entity, value):
    parsed = server.parse(text)
    found = [e for e in parsed["entities"] if e["entity"] == entity]
    assert [e["value"] for e in found] == [value]
    start, end = found[0]["start"], found[0]["end"]
    assert text[start:end] == value and found[0]["extractor"] == "CRFEntityExtractor"
    spans = rasa_token_spans(text)
    assert start in {s for s, _ in spans} and end in {e for _, e in spans}


@pytest.fixture(scope="module")
def server(assistant):
    folder, model = assistant
    with rasa_runner.RasaServer(model, folder / "server.log") as running:
        yield running


def test_intent_and_entity_in_one_parse(server):
    parsed = server.parse("pizza with pepperoni please")
    assert parsed["intent"]["name"] == "order_pizza"
    assert [(e["entity"], e["value"]) for e in parsed["entities"]] == [("topping", "pepperoni")]


def entity_test_scores(folder, model, toy_nlu):
    """`rasa test nlu` on the toy test set plus two unseen sentences with entities."""
    test = folder / "test.yml"
    held_out = [Example("slice with cheese please", "order_pizza",
                        [{"start": 11, "end": 17, "value": "cheese", "entity": "topping"}]),
                Example("weather in lisbon!", "weather", [{"start": 11, "end": 17, "value": "lisbon", "entity": "city"}])]
    write_examples(test, read_examples(toy_nlu["test"]) + held_out)
    return rasa_runner.test_nlu(model, test, folder / "results", cwd=folder)


def test_rasa_test_nlu_reports_entities_per_extractor(assistant, toy_nlu):
    folder, model = assistant
    scores = entity_test_scores(folder, model, toy_nlu)
    report = scores["entities"]["CRFEntityExtractor"]
    assert set(report["per_entity"]) == {"topping", "city"} and report["support"] == 2
    assert 0 < report["micro_f1"] <= 1 and scores["accuracy"] > 0.5


def test_entity_reports_read_every_extractor_but_not_intents(tmp_path):
    row = {"precision": 1.0, "recall": 0.5, "f1-score": 0.6667, "support": 2}
    (tmp_path / "DIETClassifier_report.json").write_text(json.dumps(
        {"city": row, "micro avg": row, "macro avg": row, "weighted avg": row}))
    (tmp_path / "intent_report.json").write_text(json.dumps({"accuracy": 1.0}))
    (tmp_path / "response_selection_report.json").write_text(json.dumps({"accuracy": 1.0}))
    reports = rasa_runner.entity_reports(tmp_path)
    assert list(reports) == ["DIETClassifier"]
    assert reports["DIETClassifier"]["micro_f1"] == 0.6667 and reports["DIETClassifier"]["micro_recall"] == 0.5
    assert reports["DIETClassifier"]["per_entity"] == {"city": {"f1": 0.6667, "support": 2}}


def test_config_snippet_adds_the_entity_extractor_only_for_data_with_entities(tmp_path):
    from rasa_kd.pipeline import has_entities

    with_entities, without = tmp_path / "with.yml", tmp_path / "without.yml"
    write_examples(with_entities, entity_examples())
    write_examples(without, [Example("hello there", "greet"), Example("bye now", "goodbye")])
    assert has_entities(with_entities) and not has_entities(without)
    assert "CRFEntityExtractor" in config_snippet(Path("student"), entities=True)
    assert "token_features: true" in config_snippet(Path("student"), entities=True)
    assert "CRFEntityExtractor" not in config_snippet(Path("student"))
    assert "token_features" not in config_snippet(Path("student"))
    assert "entities: false" in config_snippet(Path("student"), entities=True)  # the CRF's, not the student's
    joint = config_snippet(Path("student"), entities=True, joint=True)
    assert "entities: true" in joint and "CRFEntityExtractor" not in joint


def test_one_student_for_intents_and_entities_is_the_default():
    from rasa_kd.options import parse_options
    from rasa_kd.pipeline import PipelineOptions

    assert parse_options(PipelineOptions, ["--nlu", "n.yml", "--out", "o"]).entities
    assert not parse_options(PipelineOptions, ["--nlu", "n.yml", "--out", "o", "--no-entities"]).entities
    assert parse_options(PipelineOptions, ["--nlu", "n.yml", "--out", "o"]).labelling == "all"
    assert parse_options(PipelineOptions, ["--nlu", "n.yml", "--out", "o", "--labelling", "first"]).labelling == "first"


# ---------------------------------------------------------------- one student for intents and entities

# no `entities:` key: one student for intents and entities is the default for data with entities
JOINT_CONFIG = INTENTS_CONFIG.replace("policies: []", "  - name: EntitySynonymMapper\npolicies: []")


@pytest.fixture(scope="module")
def joint_assistant(tmp_path_factory, tiny_teacher_dir, toy_nlu):
    folder = tmp_path_factory.mktemp("joint")
    nlu = folder / "nlu.yml"
    write_examples(nlu, read_examples(toy_nlu["train"]) + entity_examples())
    (folder / "config.yml").write_text(JOINT_CONFIG.format(teacher=tiny_teacher_dir))
    model = rasa_runner.train_nlu(folder / "config.yml", nlu, folder / "models", "joint", cwd=folder)
    return folder, model


@pytest.fixture(scope="module")
def joint_server(joint_assistant):
    folder, model = joint_assistant
    with rasa_runner.RasaServer(model, folder / "server.log") as running:
        yield running


@pytest.mark.parametrize("text, entity, value", HELD_OUT)
def test_the_joint_student_finds_unseen_entities_on_rasa_tokens_over_http(joint_server, text, entity, value):
    parsed = joint_server.parse(text)
    found = [e for e in parsed["entities"] if e["entity"] == entity]
    assert [e["value"] for e in found] == [value] and parsed["intent"]["name"] in {"order_pizza", "weather"}
    assert found[0]["extractor"] == "StudentIntentClassifier" and 0 < found[0]["confidence_entity"] <= 1
    spans = rasa_token_spans(text)
    assert found[0]["start"] in {s for s, _ in spans} and found[0]["end"] in {e for _, e in spans}


def test_the_joint_model_is_small_and_loads_without_training(joint_assistant):
    import tarfile
    import time

    _, model = joint_assistant
    with tarfile.open(model) as archive:
        names = archive.getnames()
    assert not any("CRF" in name for name in names)  # no extractor that keeps its training data
    started = time.perf_counter()
    with rasa_runner.loaded_agent(model) as parse:
        loaded = time.perf_counter() - started
        assert parse("pizza with mushrooms please")["intent"]["name"] == "order_pizza"
    assert loaded < 60  # a sanity bound only; Agent.load seconds are measured in benchmarks/entities.py


def test_rasa_test_nlu_reports_the_joint_students_entities(joint_assistant, toy_nlu):
    folder, model = joint_assistant
    scores = entity_test_scores(folder, model, toy_nlu)
    report = scores["entities"]["StudentIntentClassifier"]
    assert set(report["per_entity"]) >= {"city"} and 0 < report["micro_f1"] <= 1


def test_entity_spans_widen_to_whole_rasa_tokens():
    from rasa.nlu.tokenizers.tokenizer import Token

    from rasa_kd.components.student_intent_classifier import token_aligned

    tokens = [Token("weather", 0), Token("in", 8), Token("são", 11), Token("paulo", 15)]
    assert token_aligned(12, 17, tokens) == (11, 20)  # part of "são" and of "paulo"
    assert token_aligned(0, 7, tokens) == (0, 7)  # the first token exactly
    assert token_aligned(30, 32, tokens) == (30, 32)  # past the tokens: left as it is


def test_training_warns_when_another_extractor_meets_the_students_entities(caplog):
    from types import SimpleNamespace

    from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor

    from rasa_kd.components import student_training

    def context(**config):
        nodes = {"train_CRFEntityExtractor2": SimpleNamespace(uses=CRFEntityExtractor, config=config)}
        return SimpleNamespace(graph_schema=SimpleNamespace(nodes=nodes))

    with caplog.at_level("WARNING"):
        student_training.warn_other_extractors({"entities": True}, context(), "StudentIntentClassifier")
        student_training.warn_other_extractors({"entities": False}, context(), "StudentIntentClassifier")
    assert len(caplog.records) == 1 and "set `entities: false`" in caplog.records[0].getMessage()
    assert "CRFEntityExtractor" in caplog.records[0].getMessage()
