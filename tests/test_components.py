"""The Rasa components with a tiny student made here: `rasa train nlu`, `rasa test nlu`,
`rasa run --enable-api`, Rasa's cache, DIET on StudentFeaturizer, and the error paths."""
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from rasa_kd import rasa_runner
from rasa_kd.errors import UserError
from rasa_kd.nlu_io import Example, read_examples, write_examples

CLASSIFIER_CONFIG = """recipe: default.v1
language: en
assistant_id: test
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    student: {student}
    ranking_length: 3
  - name: FallbackClassifier
    threshold: 0.1
policies: []
"""

FEATURIZER_CONFIG = """recipe: default.v1
language: en
assistant_id: test
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentFeaturizer
    student: {student}
  - name: DIETClassifier
    epochs: 60
    random_seed: 1
policies: []
"""


def distil_student(transfer: Path, dev: Path, out: Path, seed: int) -> Path:
    from rasa_kd import distil

    distil.distil(distil.parse([
        "--transfer", str(transfer), "--dev", str(dev), "--out", str(out), "--hidden-size", "24",
        "--fc-size", "24", "--epochs", "6", "--batch-size", "16", "--learning-rate", "0.01",
        "--seed", str(seed)]))
    return out


@pytest.fixture(scope="module")
def students(tmp_path_factory, toy_transfer_labelled, toy_nlu):
    root = tmp_path_factory.mktemp("students")
    return [distil_student(toy_transfer_labelled, toy_nlu["dev"], root / f"student-{seed}", seed)
            for seed in (1, 2)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, students, toy_nlu):
    """A Rasa model trained with config.yml pointing at a copy of the student, then deleted."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(students[0], project / "student")
    config = project / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student="student"))
    model = rasa_runner.train_nlu(config, toy_nlu["train"], project / "models", "student", cwd=project)
    shutil.rmtree(project / "student")
    return project, model


def test_trained_model_contains_the_student_and_scores_above_chance(trained, toy_nlu):
    project, model = trained
    with tarfile.open(model) as archive:
        names = archive.getnames()
    assert any(name.endswith("student/student.json") for name in names)
    assert any(name.endswith("student/model.safetensors") for name in names)
    scores = rasa_runner.test_nlu(model, toy_nlu["train"], project / "results", cwd=project)
    assert scores["accuracy"] > 0.6  # 4 intents: chance is 0.25
    assert scores["scores"]["n"] == scores["n"] and abs(scores["scores"]["accuracy"] - scores["accuracy"]) < 1e-9


def test_model_parses_without_the_student_folder(trained, toy_nlu):
    project, model = trained
    assert not (project / "student").exists()
    texts = ["hello there friend", "", "   ", "x" * 10_000, "สวัสดีครับ", "🙂 pizza?"]
    for parsed in rasa_runner.parse_messages(model, texts):
        ranking = parsed["intent_ranking"]
        confidences = [item["confidence"] for item in ranking]
        assert parsed["intent"]["name"]
        assert len(ranking) == 3 and confidences == sorted(confidences, reverse=True)
        assert all(isinstance(c, float) for c in confidences)


def test_rasa_run_http_model_parse(trained, tmp_path):
    _, model = trained
    with rasa_runner.RasaServer(model, tmp_path / "server.log") as server:
        parsed = server.parse("i want a pepperoni pizza now")
    assert parsed["intent"]["name"] == "order_pizza"
    assert parsed["intent_ranking"][0]["name"] == "order_pizza"
    assert parsed["intent_ranking"][0]["confidence"] >= parsed["intent_ranking"][1]["confidence"]


def test_changing_the_student_retrains_the_component(tmp_path, students, toy_nlu):
    from rasa_kd.students import load

    shutil.copytree(students[0], tmp_path / "student")
    config = tmp_path / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student="student"))
    texts = [e.text for e in read_examples(toy_nlu["test"])][:5]
    first = rasa_runner.train_nlu(config, toy_nlu["train"], tmp_path / "models", "first", cwd=tmp_path)
    shutil.rmtree(tmp_path / "student")
    shutil.copytree(students[1], tmp_path / "student")
    second = rasa_runner.train_nlu(config, toy_nlu["train"], tmp_path / "models", "second", cwd=tmp_path)
    expected = [load(students[1]).predict([text])[0].max() for text in texts]
    got = [p["intent"]["confidence"] for p in rasa_runner.parse_messages(second, texts)]
    before = [p["intent"]["confidence"] for p in rasa_runner.parse_messages(first, texts)]
    assert np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(before, got, atol=1e-5)


def failing_train(tmp_path, student: str, nlu: Path) -> str:
    config = tmp_path / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student=student))
    with pytest.raises(UserError):
        rasa_runner.train_nlu(config, nlu, tmp_path / "models", "bad", cwd=tmp_path)
    return (tmp_path / "models" / "bad-train.log").read_text()


def test_label_mismatch_stops_rasa_with_one_line(tmp_path, students, toy_nlu):
    examples = read_examples(toy_nlu["train"]) + [Example("what is my balance", "check_balance")]
    nlu = tmp_path / "nlu.yml"
    write_examples(nlu, examples)
    log = failing_train(tmp_path, str(students[0]), nlu)
    assert "InvalidConfigException: StudentIntentClassifier: the student's labels do not match" in log
    assert "check_balance" in log and "Traceback" not in log


@pytest.mark.parametrize("case", ["missing", "corrupt"])
def test_missing_or_corrupt_student_stops_rasa_with_one_line(tmp_path, students, toy_nlu, case):
    student = tmp_path / "student"
    if case == "corrupt":
        shutil.copytree(students[0], student)
        (student / "student.json").write_text("{not json")
    log = failing_train(tmp_path, str(student), toy_nlu["train"])
    assert "InvalidConfigException: StudentIntentClassifier:" in log and "Traceback" not in log
    assert ("not a rasa-kd student package" if case == "missing" else "corrupt") in log


ENTITY_EXAMPLES = [
    ("i want a [pepperoni](topping) pizza", "order_pizza"), ("a [cheese](topping) pizza please", "order_pizza"),
    ("[pepperoni](topping) slice now", "order_pizza"), ("can i have [cheese](topping) pizza", "order_pizza"),
    ("pizza with [pepperoni](topping) for me", "order_pizza"), ("[cheese](topping) delivery today", "order_pizza"),
    ("hello there", "greet"), ("hi friend", "greet"), ("good morning", "greet"), ("hey you", "greet"),
    ("greetings to you", "greet"), ("hello my friend", "greet"),
]


def test_featurizer_with_diet_extracts_an_entity(tmp_path, students):
    nlu = tmp_path / "nlu.yml"
    lines = {}
    for text, intent in ENTITY_EXAMPLES:
        lines.setdefault(intent, []).append(f"    - {text}")
    nlu.write_text('version: "3.1"\nnlu:\n' + "".join(
        f"- intent: {intent}\n  examples: |\n" + "\n".join(rows) + "\n" for intent, rows in lines.items()))
    config = tmp_path / "config.yml"
    config.write_text(FEATURIZER_CONFIG.format(student=students[0]))
    model = rasa_runner.train_nlu(config, nlu, tmp_path / "models", "diet", cwd=tmp_path)
    (parsed,) = rasa_runner.parse_messages(model, ["i want a cheese pizza please"])
    assert parsed["intent"]["name"] == "order_pizza"
    assert [(e["entity"], e["value"]) for e in parsed["entities"]] == [("topping", "cheese")]


def test_sequence_features_have_one_row_per_rasa_token(tmp_path, students):
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from rasa_kd.components import StudentFeaturizer

    context = ExecutionContext(graph_schema=None, node_name="featurizer")
    (tmp_path / "storage").mkdir()
    featurizer = StudentFeaturizer.create({**StudentFeaturizer.get_default_config(), "student": str(students[0])},
                                          LocalModelStorage(tmp_path / "storage"), Resource("featurizer"), context)
    featurizer.train(TrainingData())
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    texts = ["pizzas!!! for me, please?", "hello 🙂 friend", "unknownwordings delivery...", "a"]
    messages = [Message(data={TEXT: text}) for text in texts]
    tokenizer.process(messages)
    featurizer.process(messages)
    for message in messages:
        sequence, sentence = message.get_dense_features(TEXT)
        n_tokens = len(message.get("text_tokens"))
        assert sequence.features.shape[0] == n_tokens and sentence.features.shape[0] == 1
        assert np.abs(sequence.features).sum(axis=1).min() > 0  # every token got a student vector
