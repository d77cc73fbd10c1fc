"""Distillation inside `rasa train nlu`: no `student:` in config.yml; the teacher backbone is the tiny
teacher folder made in conftest (fine-tuned again on the data Rasa hands the component).

The student is distilled from exactly the training data Rasa hands the component, the
model carries the student and no teacher, Rasa's cache skips the work when nothing
changed, a new intent is learnt after a retrain, cross-validation distils per fold, and
a pre-made package that saw other sentences is flagged."""
import tarfile
from pathlib import Path

import pytest

import rasa_runner
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples

CONFIG = """recipe: default.v1
language: en
assistant_id: test
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    teacher: {teacher}
    preset: fast
    teacher_refit: never  # one teacher training per run (tests/test_pipeline.py tests the refit)
    transfer_size: 1000
    epochs: 10
    seed: 1
policies: []
"""
STAGE_LINE = "== distil: transfer="  # the line a distil stage starts with (logged at INFO)


def train(project: Path, nlu: Path, name: str, log_level: str = "INFO") -> Path:
    return rasa_runner.train_nlu(project / "config.yml", nlu, project / "models", name, cwd=project,
                                 log_level=log_level)


def log_of(project: Path, name: str) -> str:
    return (project / "models" / f"{name}-train.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def project(tmp_path_factory, toy_nlu):
    """An assistant with the default teacher (the offline MiniLM package), so that what it learns is
    real: a toy teacher learns too little to tell whether a new intent was learnt."""
    folder = tmp_path_factory.mktemp("assistant")
    (folder / "config.yml").write_text(CONFIG.format(teacher="minilm"))
    model = train(folder, toy_nlu["train"], "first")
    return folder, model


def test_rasa_train_distils_a_student_and_ships_no_teacher(project, toy_nlu):
    folder, model = project
    assert STAGE_LINE in log_of(folder, "first")
    with tarfile.open(model) as archive:
        names = archive.getnames()
    student = {Path(n).name for n in names if Path(n).parent.name == "student"}
    assert "student.json" in student and student & {"model.int8.onnx", "model.onnx"}
    assert not any(Path(n).name in ("config.json", "pytorch_model.bin", "model.safetensors") for n in names)
    assert not list(folder.glob("rasa-kd-*")) and not (folder / "build").exists()  # nothing left in the project
    scores = rasa_runner.test_nlu(model, toy_nlu["test"], folder / "results", cwd=folder)
    assert scores["accuracy"] > 0.5  # held-out toy test, 4 intents: chance is 0.25


def test_unchanged_data_is_served_from_rasa_cache(project, toy_nlu):
    folder, _ = project
    train(folder, toy_nlu["train"], "second")
    assert STAGE_LINE not in log_of(folder, "second")


def test_a_new_intent_is_learnt_after_retraining(project, toy_nlu, tmp_path):
    folder, _ = project
    examples = read_examples(toy_nlu["train"]) + [
        Example(text, "ask_time") for text in ("what time is it", "tell me the time", "time please", "the time now",
                                                "what is the time today", "clock time", "current time please",
                                                "can you tell me the time")]
    nlu = write_nlu(tmp_path / "nlu.yml", examples)
    model = train(folder, nlu, "third", log_level="WARNING")  # `rasa train --quiet`: Rasa's level applies to us
    assert STAGE_LINE not in log_of(folder, "third")
    parsed = rasa_runner.parse_messages(model, ["what time is it now", "could you tell me the time"])
    assert [message["intent"]["name"] for message in parsed] == ["ask_time", "ask_time"]  # not merely ranked


def write_nlu(path: Path, examples) -> Path:
    write_examples(path, examples)
    return path


def test_bad_nlu_data_is_one_line(project, tmp_path):
    folder, _ = project
    nlu = write_nlu(tmp_path / "one.yml", [Example("hello", "greet"), Example("hi there", "greet")])
    with pytest.raises(Exception, match="needs at least two"):
        train(folder, nlu, "bad")
    assert "Traceback" not in log_of(folder, "bad").split("InvalidConfigException")[-1]


def test_cross_validation_distils_a_student_per_fold(project, toy_nlu):
    folder, _ = project
    out = folder / "cv"
    rasa_runner.run_rasa(["test", "nlu", "--cross-validation", "--folds", "2", "--config", "config.yml",
                          "--nlu", str(toy_nlu["train"]), "--out", str(out)], folder, folder / "cv.log", "INFO")
    log = (folder / "cv.log").read_text(errors="replace")
    assert log.count(STAGE_LINE) == 2 and (out / "intent_report.json").is_file()


def premade_config(student: Path) -> str:
    return CONFIG.format(teacher="minilm").replace("    teacher:", f"    student: {student}\n    teacher:")


def test_premade_package_that_saw_other_sentences_is_flagged(toy_transfer_labelled, toy_nlu, tmp_path):
    from rasa_kd.students import distil

    student = tmp_path / "student"  # distilled from every toy training sentence
    distil.distil(distil.parse(["--transfer", toy_transfer_labelled, "--dev", toy_nlu["dev"], "--out", student,
                                "--preset", "fast", "--epochs", "1"]))
    config = tmp_path / "config.yml"
    config.write_text(premade_config(student))
    rasa_runner.train_nlu(config, toy_nlu["train"], tmp_path / "models", "same", cwd=tmp_path)
    assert "optimistic" not in (tmp_path / "models" / "same-train.log").read_text()
    fewer = write_nlu(tmp_path / "fewer.yml", [e for i, e in enumerate(read_examples(toy_nlu["train"])) if i % 2])
    rasa_runner.train_nlu(config, fewer, tmp_path / "models", "fewer", cwd=tmp_path)
    assert "scores on them are optimistic" in (tmp_path / "models" / "fewer-train.log").read_text()


DOMAIN = """version: "3.1"
intents: [greet, goodbye, weather, order_pizza]
responses:
  utter_greet: [{text: "hello from the tiny bot"}]
  utter_goodbye: [{text: "bye from the tiny bot"}]
  utter_weather: [{text: "sunny, says the tiny bot"}]
  utter_order_pizza: [{text: "pizza is on its way"}]
"""


def rules_yaml() -> str:
    rules = [f"- rule: {intent}\n  steps:\n  - intent: {intent}\n  - action: utter_{intent}"
             for intent in ("greet", "goodbye", "weather", "order_pizza")]
    return 'version: "3.1"\nrules:\n' + "\n".join(rules) + "\n"


def test_whole_assistant_answers_over_the_rest_channel(project, toy_nlu):
    import shutil

    folder, _ = project
    data = folder / "data"
    data.mkdir()
    shutil.copy(toy_nlu["train"], data / "nlu.yml")
    (data / "rules.yml").write_text(rules_yaml())
    (folder / "domain.yml").write_text(DOMAIN)
    (folder / "credentials.yml").write_text("rest:\n")
    config = folder / "assistant-config.yml"
    config.write_text((folder / "config.yml").read_text().replace("policies: []", "policies:\n  - name: RulePolicy"))
    model = rasa_runner.train_assistant(config, folder / "domain.yml", data, folder / "models", "assistant",
                                        cwd=folder)
    with rasa_runner.RasaServer(model, folder / "server.log", credentials=folder / "credentials.yml") as server:
        replies = [server.say("tester", text) for text in ("hello there", "pizza with cheese please", "bye now")]
    assert all(len(reply) == 1 for reply in replies)
    assert replies[0] == ["hello from the tiny bot"] and replies[2] == ["bye from the tiny bot"]


def test_fingerprint_follows_the_preset_recipe(monkeypatch):
    """A release that changes what a preset means must not get the old student from Rasa's cache."""
    import dataclasses

    from rasa_kd.students import presets
    from rasa_kd.components import student_training

    config = {"teacher": "minilm", "preset": "fast"}
    before = student_training.training_fingerprint(config)
    assert before == student_training.training_fingerprint(dict(config))
    assert before != student_training.training_fingerprint({**config, "preset": "balanced"})
    # the config as written in config.yml, without the component's defaults
    assert student_training.training_fingerprint({}) == student_training.training_fingerprint(
        {"teacher": None, "preset": student_training.TRAINING_CONFIG["preset"]})
    changed = dataclasses.replace(presets.PRESETS["fast"], distil={**presets.PRESETS["fast"].distil, "hidden_size": 64})
    monkeypatch.setitem(presets.PRESETS, "fast", changed)
    changed_preset = student_training.training_fingerprint(config)
    assert changed_preset != before
    from rasa_kd.teachers import choice  # and a release that changes the teacher choice

    monkeypatch.setattr(choice, "ENGLISH_WORDS_MIN", 0.7)
    changed_choice = student_training.training_fingerprint(config)
    assert changed_choice != changed_preset
    # the teacher refit: its key, and what auto stands for
    assert student_training.training_fingerprint({**config, "teacher_refit": "never"}) != changed_choice
    assert student_training.training_fingerprint({**config, "teacher_refit": "auto"}) == changed_choice
    monkeypatch.setattr(student_training, "REFIT_MAX_SENTENCES", 100)
    assert student_training.training_fingerprint(config) != changed_choice


def test_an_ensemble_teacher_the_accurate_preset_and_the_onnx_runtime_in_rasa_train(tiny_bert_dir, toy_nlu,
                                                                                     tmp_path):
    """`teacher:` as a list fine-tunes and averages one teacher per backbone; `preset: accurate` and
    `runtime: onnx` reach the student Rasa ships and serves."""
    import json
    import shutil

    from rasa_kd.students.presets import distil_options

    other = shutil.copytree(tiny_bert_dir, tmp_path / "other-backbone")
    config = (CONFIG.replace("preset: fast", "preset: accurate\n    runtime: onnx")
              .replace("transfer_size: 1000", "transfer_size: 200").replace("epochs: 10", "epochs: 1"))
    (tmp_path / "config.yml").write_text(config.format(teacher=f"[{tiny_bert_dir}, {other}]"))
    model = train(tmp_path, toy_nlu["train"], "ensemble")
    assert "from 2 teacher(s)" in log_of(tmp_path, "ensemble")
    with tarfile.open(model) as archive:
        stored = {Path(member.name).name: member for member in archive.getmembers()
                  if Path(member.name).parent.name == "student"}
        manifest = json.load(archive.extractfile(stored["student.json"]))
    assert "model.onnx" in stored and "model.int8.onnx" not in stored
    accurate = distil_options("accurate")
    assert manifest["recipe"]["preset"] == "accurate" and manifest["recipe"]["embedding_dim"] == accurate.embedding_dim
    parsed = rasa_runner.parse_messages(model, ["hello there"])
    assert parsed[0]["intent"]["name"] in {e.intent for e in read_examples(toy_nlu["train"])}
