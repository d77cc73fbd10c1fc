"""The Rasa components with a tiny student made here: `rasa train nlu`, `rasa test nlu`,
`rasa run --enable-api`, Rasa's cache, the runtime stored in the model, DIET on
StudentFeaturizer, and the error paths."""
import json
import shutil
import tarfile
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import rasa_runner
from rasa_kd.errors import UserError
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples

CLASSIFIER_CONFIG = """recipe: default.v1
language: en
assistant_id: test
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    student: {student}
    ranking_length: 3
    runtime: {runtime}
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
    from rasa_kd.students import distil

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
def exported_student(tmp_path_factory, students):
    """students[0] with model.onnx and model.int8.onnx, whose student.json deploys int8."""
    from rasa_kd.students import export
    from rasa_kd.formats import student_package

    path = shutil.copytree(students[0], tmp_path_factory.mktemp("exported") / "student")
    export.export(path, onnx=True, quantized=True)
    student_package.update_manifest(path, runtime="int8")
    return path


def train_in_project(project: Path, student: Path, runtime: str, toy_nlu) -> Path:
    """`rasa train nlu` with config.yml pointing at a copy of `student`, which is then deleted."""
    shutil.copytree(student, project / "student")
    config = project / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student="student", runtime=runtime))
    model = rasa_runner.train_nlu(config, toy_nlu["train"], project / "models", "student", cwd=project)
    shutil.rmtree(project / "student")
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory, exported_student, toy_nlu):
    """A Rasa model trained with `runtime: auto` on the exported student (int8), then deleted."""
    project = tmp_path_factory.mktemp("project")
    return project, train_in_project(project, exported_student, "auto", toy_nlu)


def stored_files(model: Path) -> set:
    """The names of the student files inside a trained Rasa model."""
    with tarfile.open(model) as archive:
        return {Path(name).name for name in archive.getnames() if Path(name).parent.name == "student"}


def expected_files(student: Path, runtime: str) -> set:
    from rasa_kd.formats import student_package

    return set(student_package.runtime_files(student_package.read_manifest(student), runtime))


def student_ranking(parsed) -> list:
    """The student's intent_ranking, without the nlu_fallback FallbackClassifier adds to ambiguous messages."""
    return [item for item in parsed["intent_ranking"] if item["name"] != "nlu_fallback"]


def top_confidences(model: Path, texts) -> list:
    return [student_ranking(parsed)[0]["confidence"] for parsed in rasa_runner.parse_messages(model, texts)]


def test_trained_model_contains_the_student_and_scores_above_chance(trained, exported_student, toy_nlu):
    project, model = trained
    assert stored_files(model) == expected_files(exported_student, "int8")  # no model.onnx, no safetensors
    assert "model.int8.onnx" in stored_files(model) and "tokenizer.json" in stored_files(model)
    scores = rasa_runner.test_nlu(model, toy_nlu["test"], project / "results", cwd=project)
    assert scores["accuracy"] > 0.6  # held-out examples, 4 intents: chance is 0.25
    assert scores["scores"]["n"] == scores["n"] and abs(scores["scores"]["accuracy"] - scores["accuracy"]) < 1e-9


def test_model_parses_without_the_student_folder(trained, exported_student):
    from rasa_kd.students import load

    project, model = trained
    assert not (project / "student").exists()
    texts = ["hello there friend", "", "   ", "x" * 10_000, "สวัสดีครับ", "🙂 pizza?"]
    parsed_messages = rasa_runner.parse_messages(model, texts)
    for parsed in parsed_messages:
        ranking = student_ranking(parsed)
        confidences = [item["confidence"] for item in ranking]
        assert parsed["intent"]["name"]
        assert len(ranking) == 3 and confidences == sorted(confidences, reverse=True)
        assert all(isinstance(c, float) for c in confidences)
    int8 = load(exported_student, runtime="int8")  # one text at a time: int8 activation scales depend on the batch
    expected = [int8.predict([text])[0].max() for text in texts]
    assert np.allclose([student_ranking(parsed)[0]["confidence"] for parsed in parsed_messages], expected, atol=1e-5)


def test_runtime_pytorch_stores_only_the_safetensors(tmp_path, exported_student, toy_nlu):
    from rasa_kd.students import load

    model = train_in_project(tmp_path, exported_student, "pytorch", toy_nlu)
    assert stored_files(model) == expected_files(exported_student, "pytorch")
    assert "model.safetensors" in stored_files(model) and not {"model.onnx", "model.int8.onnx"} & stored_files(model)
    texts = [e.text for e in read_examples(toy_nlu["test"])][:5]
    expected = load(exported_student, runtime="pytorch").predict(texts).max(axis=1)
    assert np.allclose(top_confidences(model, texts), expected, atol=1e-5)


def test_fingerprint_follows_the_runtime_and_its_files(tmp_path, exported_student):
    from rasa_kd.components.student_storage import package_fingerprint

    package = shutil.copytree(exported_student, tmp_path / "student")

    def fingerprint(**config) -> str:
        return package_fingerprint({"student": str(package), **config})

    auto, pytorch, legacy_onnx = fingerprint(runtime="auto"), fingerprint(runtime="pytorch"), fingerprint(onnx=True)
    assert len({auto, pytorch, legacy_onnx}) == 3 and legacy_onnx == fingerprint(runtime="onnx")
    (package / "model.onnx").write_bytes(b"changed")  # read by neither int8 nor PyTorch
    (package / "metrics-test.json").write_text("{}")
    assert (fingerprint(), fingerprint(runtime="pytorch")) == (auto, pytorch)
    assert fingerprint(onnx=True) != legacy_onnx


HOSTILE_MESSAGES = {
    "100k characters": " ".join(["pizza", "hello", "xq"] * 17_000)[:100_000],
    "control characters": "hi\x00\x01\x07\x1b[31m there\x7f",
    "zero-width characters": "pi\u200bzza\u200d\ufeff\u2060 now",
    "right-to-left text": "\u202eazzip a tnaw i \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "emoji flood": "\U0001f355" * 5000 + "\U0001f468\u200d\U0001f469\u200d\U0001f467" * 500,
    "only punctuation": "?!.,;:-'\"()[]{}" * 200,
}


def test_rasa_run_http_model_parse(trained, tmp_path):
    _, model = trained
    with rasa_runner.RasaServer(model, tmp_path / "server.log") as server:
        parsed = server.parse("i want a pepperoni pizza now")
        hostile = {name: server.parse(text) for name, text in HOSTILE_MESSAGES.items()}  # 200 or urllib raises
    assert parsed["intent"]["name"] == "order_pizza"
    assert parsed["intent_ranking"][0]["name"] == "order_pizza"
    assert parsed["intent_ranking"][0]["confidence"] >= parsed["intent_ranking"][1]["confidence"]
    for name, answer in hostile.items():
        assert answer["intent"]["name"] and isinstance(answer["intent"]["confidence"], float), name
    assert "Traceback" not in (tmp_path / "server.log").read_text()


FAR_OFF = "quantum chromodynamics renormalisation of lattice gauge eigenvalues"


def test_a_far_off_message_falls_back_over_http_and_a_known_one_keeps_its_intent(tmp_path, exported_student, toy_nlu):
    from rasa_kd.students.fallback import FallbackOptions, fallback_from_options

    package = shutil.copytree(exported_student, tmp_path / "student")
    threshold = fallback_from_options(FallbackOptions(model=package, train=toy_nlu["train"], dev=toy_nlu["dev"],
                                                      score="nearest"))["threshold"]
    config = tmp_path / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student="student", runtime="auto").replace(
        "threshold: 0.1", f"threshold: {threshold}"))
    model = rasa_runner.train_nlu(config, toy_nlu["train"], tmp_path / "models", "fallback", cwd=tmp_path)
    with rasa_runner.RasaServer(model, tmp_path / "server.log") as server:
        known, far = server.parse("i want a pepperoni pizza now"), server.parse(FAR_OFF)
    assert known["intent"]["name"] == "order_pizza" and far["intent"]["name"] == "nlu_fallback"
    plain = rasa_runner.parse_messages(train_in_project(tmp_path / "plain", exported_student, "auto", toy_nlu),
                                       [FAR_OFF])[0]
    assert [item["name"] for item in student_ranking(far)] == [item["name"] for item in student_ranking(plain)]
    assert student_ranking(far)[0]["confidence"] < student_ranking(plain)[0]["confidence"]


def test_changing_the_student_retrains_the_component(tmp_path, students, toy_nlu):
    from rasa_kd.students import load

    shutil.copytree(students[0], tmp_path / "student")
    config = tmp_path / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student="student", runtime="auto"))
    texts = [e.text for e in read_examples(toy_nlu["test"])][:5]
    first = rasa_runner.train_nlu(config, toy_nlu["train"], tmp_path / "models", "first", cwd=tmp_path)
    shutil.rmtree(tmp_path / "student")
    shutil.copytree(students[1], tmp_path / "student")
    second = rasa_runner.train_nlu(config, toy_nlu["train"], tmp_path / "models", "second", cwd=tmp_path)
    expected = [load(students[1]).predict([text])[0].max() for text in texts]
    got, before = top_confidences(second, texts), top_confidences(first, texts)
    assert np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(before, got, atol=1e-5)


def failing_train(tmp_path, student: str, nlu: Path, runtime: str = "auto") -> str:
    config = tmp_path / "config.yml"
    config.write_text(CLASSIFIER_CONFIG.format(student=student, runtime=runtime))
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


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def newer_format(student: Path) -> None:
    manifest = json.loads((student / "student.json").read_text())
    from rasa_kd.formats.student_package import FORMAT_VERSION

    (student / "student.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))


BROKEN_PACKAGES = {  # case -> (how the copied package is broken, what the one line says)
    "missing": (None, "not a rasa-kd student package"),
    "corrupt": (lambda p: (p / "student.json").write_text("{not json"), "corrupt student manifest"),
    "newer": (newer_format, "newer than this rasa-kd reads"),
    "truncated-int8": (lambda p: truncate(p / "model.int8.onnx"), "cannot load the ONNX model"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PACKAGES))
def test_missing_or_corrupt_student_stops_rasa_with_one_line(tmp_path, exported_student, toy_nlu, case):
    student = tmp_path / "student"
    change, message = BROKEN_PACKAGES[case]
    if change:
        change(shutil.copytree(exported_student, student))
    log = failing_train(tmp_path, str(student), toy_nlu["train"])
    assert "InvalidConfigException: StudentIntentClassifier:" in log and "Traceback" not in log
    assert message in log


def test_missing_runtime_file_stops_rasa_with_one_line(tmp_path, students, toy_nlu):
    log = failing_train(tmp_path, str(students[0]), toy_nlu["train"], runtime="int8")  # never exported
    (line,) = [line for line in log.splitlines() if "InvalidConfigException" in line]
    assert f"StudentIntentClassifier: {students[0] / 'model.int8.onnx'}: not found" in line
    assert f"run `rasa-kd export --model {students[0]} --quantize`" in line and "Traceback" not in log


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


def trained_featurizer(storage: Path, student: Path, component=None, nlu: Optional[Path] = None, **config_values):
    """(`component` (default StudentFeaturizer) trained with `student` on `nlu` (default an
    empty data set), its config, storage, resource, context)."""
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from rasa_kd.components import StudentFeaturizer

    component = component or StudentFeaturizer
    storage.mkdir()
    config = {**component.get_default_config(), "student": str(student), **config_values}
    arguments = (config, LocalModelStorage(storage), Resource("featurizer"),
                 ExecutionContext(graph_schema=None, node_name="featurizer"))
    featurizer = component.create(*arguments)
    featurizer.train(load_data(str(nlu)) if nlu else TrainingData())
    return featurizer, arguments


def test_featurizer_stores_and_loads_one_runtime(tmp_path, exported_student):
    from rasa_kd.components import StudentFeaturizer

    featurizer, arguments = trained_featurizer(tmp_path / "storage", exported_student)
    stored = {p.name for p in (tmp_path / "storage").rglob("*") if p.is_file()}
    assert featurizer.student.runtime == "int8" and stored == expected_files(exported_student, "int8")
    loaded = StudentFeaturizer.load(*arguments).student
    assert loaded.runtime == "int8" and np.allclose(loaded.encode(["hi"]), featurizer.student.encode(["hi"]))


def test_sequence_features_have_one_row_per_rasa_token(tmp_path, students):
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message

    featurizer, _ = trained_featurizer(tmp_path / "storage", students[0])
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


def test_classifier_token_features_equal_the_featurizers(tmp_path, students, toy_nlu):
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.constants import ACTION_TEXT, INTENT, TEXT
    from rasa.shared.nlu.training_data.message import Message

    from rasa_kd.components import StudentIntentClassifier

    featurizer, _ = trained_featurizer(tmp_path / "featurizer", students[0])
    classifier, _ = trained_featurizer(tmp_path / "classifier", students[0], StudentIntentClassifier,
                                       nlu=toy_nlu["train"], token_features=True)
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())

    def messages():
        made = [Message(data={TEXT: "pizza for me, please"}), Message(data={ACTION_TEXT: "here is your pizza"}),
                Message(data={TEXT: "hi", ACTION_TEXT: "hello there friend"})]
        tokenizer.process(made)
        return made

    by_featurizer, by_classifier = featurizer.process(messages()), classifier.process(messages())
    for expected, message in zip(by_featurizer, by_classifier):
        for attribute in (TEXT, ACTION_TEXT):
            wanted, got = expected.get_dense_features(attribute), message.get_dense_features(attribute)
            assert [f is None for f in got] == [f is None for f in wanted]
            for want, have in zip(wanted, got):
                if want is not None:
                    assert np.allclose(want.features, have.features, atol=1e-5)
        assert message.get(INTENT)["name"] in classifier.student.labels
    assert by_classifier[1].get_dense_features(TEXT) == (None, None)  # no text: no text features


def test_explicit_runtime_overrides_the_package_recommendation(exported_student, toy_nlu, tmp_path):
    from rasa_kd.formats import student_package

    recommends_onnx = shutil.copytree(exported_student, tmp_path / "onnx-recommended")
    student_package.update_manifest(recommends_onnx, runtime="onnx")
    model = train_in_project(tmp_path, recommends_onnx, "int8", toy_nlu)
    assert "model.int8.onnx" in stored_files(model) and "model.onnx" not in stored_files(model)
    assert rasa_runner.parse_messages(model, ["hello there"])[0]["intent"]["name"]  # loads the int8 it carries
