"""One home per default: the CLI, the pipeline, the Rasa component and the presets agree,
and each default value is written in exactly one place of the library."""
import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from rasa_kd import pipeline
from rasa_kd.options import add_options, from_namespace
from rasa_kd.students import distil, export
from rasa_kd.students.config import BiLSTMConfig, SmallBertConfig
from rasa_kd.students.distil_options import DistilOptions, resolved
from rasa_kd.students.presets import DEFAULT_PRESET, Preset, distil_options, get_preset
from rasa_kd.teachers import fine_tune
from rasa_kd.teachers.resources import DEFAULT_TEACHER
from rasa_kd.transfer import augment

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = [*sorted((ROOT / "rasa_kd").rglob("*.py")), *sorted((ROOT / "components").glob("*.py"))]


def parsed(cls, argv):
    parser = argparse.ArgumentParser()
    add_options(parser, cls)
    return from_namespace(cls, parser.parse_args(argv))


def test_distil_command_line_defaults_are_the_default_preset():
    files = {"transfer": Path("t"), "dev": Path("d.yml"), "out": Path("o")}
    from_cli = distil.parse(["--transfer", "t", "--dev", "d.yml", "--out", "o"])
    assert from_cli == distil_options(**files) == dataclasses.replace(DistilOptions(), **files)
    assert from_cli.preset == DEFAULT_PRESET


@pytest.mark.parametrize("student, config", [("bilstm", BiLSTMConfig), ("bert", SmallBertConfig)])
def test_architecture_defaults_come_from_the_configs(student, config):
    options = resolved(distil_options(student=student))
    assert options.hidden_size == config.hidden_size and options.learning_rate == config.LEARNING_RATE
    assert DistilOptions.dropout == config.dropout
    assert (DistilOptions.layers, DistilOptions.heads, DistilOptions.intermediate, DistilOptions.projection) == (
        SmallBertConfig.num_hidden_layers, SmallBertConfig.num_attention_heads, SmallBertConfig.intermediate_size,
        SmallBertConfig.projection)
    assert (DistilOptions.fc_size, DistilOptions.pooling, DistilOptions.embedding_mode) == (
        BiLSTMConfig.fc_size, BiLSTMConfig.pooling, BiLSTMConfig.mode)


def test_pipeline_component_and_teacher_use_the_same_defaults():
    from rasa_kd.components.student_intent_classifier import StudentIntentClassifier

    options = parsed(pipeline.PipelineOptions, ["--nlu", "n.yml", "--out", "o"])
    component = StudentIntentClassifier.get_default_config()
    assert options.preset == component["preset"] == DEFAULT_PRESET
    assert component["teacher"] is options.teacher is None  # chosen by the data (rasa_kd.teachers.choice)
    assert component["language"] is options.language is None
    assert (component["transfer_size"], component["epochs"], component["seed"], component["dev_fraction"]) == (
        options.size, options.epochs, options.seed, options.dev_fraction)
    assert parsed(fine_tune.TeacherOptions, ["--train", "t.yml", "--out", "o"]).model == DEFAULT_TEACHER


@pytest.mark.parametrize("n_train", [10, 2_000, 10_000])
def test_augment_sizes_the_transfer_set_as_the_default_preset(n_train):
    options = parsed(augment.AugmentOptions, ["--train", "t.yml", "--out", "o"])
    assert augment.default_size(n_train, options) == get_preset(DEFAULT_PRESET).transfer_size(n_train)


def test_export_keeps_int8_by_the_presets_rule():
    options = parsed(export.ExportOptions, ["--model", "m"])
    assert options.int8_max_drop == Preset.int8_max_drop == get_preset(DEFAULT_PRESET).int8_max_drop


# value -> a regular expression for a line that defines it; each must match exactly one line
DEFINITIONS = {
    "BiLSTM hidden size": rf"hidden\w*\W.*\b{BiLSTMConfig.hidden_size}\b",
    "small-BERT hidden size": rf"hidden\w*\W.*\b{SmallBertConfig.hidden_size}\b",
    "BiLSTM learning rate": r"\b5e-3\b",
    "small-BERT learning rate": r"\b3e-4\b",
    "default teacher": r"(?<![=!<>])=\s*\"minilm\"",
    "transfer-set size factor": r"size_factor\b.*=\s*\d",
    "transfer-set minimum": r"min_size\b.*=\s*\d",
    "transfer-set maximum": r"max_size\b.*=\s*\d",
    "default preset": r"(?<![=!<>])=\s*\"balanced\"",
    "fallback threshold": r"THRESHOLD\s*=\s*0\.3\b|threshold: 0\.3\b",
    "int8 accuracy drop": r"int8_max_drop\b.*=\s*0\.",
}


@pytest.mark.parametrize("name", DEFINITIONS)
def test_each_default_is_defined_once(name):
    pattern = re.compile(DEFINITIONS[name])
    lines = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in LIBRARY
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if pattern.search(line)]
    assert len(lines) == 1, f"{name} is written {len(lines)} times:\n" + "\n".join(lines)
