"""`rasa-kd export` (ONNX, int8) and `rasa-kd evaluate` on students and a teacher folder."""
import json

import numpy as np
import pytest

from rasa_kd.errors import UserError
from test_students import LABELS, toy_examples, toy_world, write_nlu  # noqa: F401 (fixture)

TEXTS = ["hello there", "goodbye my dear friend, see you later today!", "rain?", "", "book me a table now please"]


def distilled(world, out, *extra):
    from rasa_kd import distil

    distil.distil(distil.parse(["--transfer", world["transfer"], "--dev", world["dev"], "--out", out,
                                "--batch-size", "16", "--learning-rate", "3e-3", *extra]))
    return out


@pytest.fixture(scope="module", params=["bilstm", "bert"])
def exported(request, tmp_path_factory, toy_world):
    """A wordpiece BiLSTM or small-BERT package with model.onnx and model.int8.onnx."""
    from rasa_kd import export

    sizes = {"bilstm": ["--hidden-size", "16", "--fc-size", "16", "--pooling", "last"],
             "bert": ["--student", "bert", "--hidden-size", "16", "--heads", "2", "--layers", "2",
                      "--intermediate", "32"]}[request.param]
    package = distilled(toy_world, tmp_path_factory.mktemp(request.param) / "student", "--epochs", "4",
                        *sizes)
    export.export(package, onnx=True, quantized=True, data=toy_world["test"])
    return package


def test_onnx_and_pytorch_agree(exported):
    from rasa_kd.students import load

    torch_student, onnx_student = load(exported), load(exported, onnx=True)
    assert torch_student.backend.name == "torch" and onnx_student.backend.name == "onnx"
    for texts in (TEXTS, TEXTS[:1], TEXTS * 30):  # batch and length vary
        assert np.allclose(torch_student.predict(texts), onnx_student.predict(texts), atol=1e-5)
        assert np.allclose(torch_student.encode(texts), onnx_student.encode(texts), atol=1e-4)
    vectors, offsets = torch_student.encode_tokens(TEXTS[1])
    onnx_vectors, onnx_offsets = onnx_student.encode_tokens(TEXTS[1])
    assert offsets == onnx_offsets and np.allclose(vectors, onnx_vectors, atol=1e-4)


def test_export_summary_and_int8(exported):
    from rasa_kd.students import load

    summary = json.loads((exported / "export.json").read_text())
    assert summary["onnx"]["max_abs_diff"]["logits"] < 1e-3
    if load(exported).architecture == "bert":  # both layers' attention fused into onnxruntime's contrib op
        assert summary["fused_ops"]["Attention"] == 2 and summary["fused_ops"]["SkipLayerNormalization"] == 4
    else:
        assert "fused_ops" not in summary
    assert {"accuracy_pytorch", "accuracy_int8", "accuracy_change"} <= set(summary["int8"])
    int8 = load(exported, quantized=True)
    assert int8.backend.name == "onnx" and int8.backend.model_file.name == "model.int8.onnx"
    assert np.allclose(int8.predict(TEXTS).sum(axis=1), 1, atol=1e-5)


def test_wordpiece_offsets_are_character_spans(exported):
    from rasa_kd.students import load

    text = "Hello,  rains today!"
    vectors, offsets = load(exported).encode_tokens(text)
    assert [text[s:e] for s, e in offsets] == ["Hello", ",", "rain", "s", "today", "!"]  # no [CLS]/[SEP]
    assert vectors.shape[0] == 6


def test_onnx_without_export_falls_back_to_torch(toy_world, tmp_path):
    from rasa_kd.students import load

    package = distilled(toy_world, tmp_path / "s", "--epochs", "1", "--hidden-size", "8", "--fc-size", "8")
    with pytest.warns(UserWarning, match="model.onnx not found"):
        student = load(package, onnx=True)
    assert student.backend.name == "torch"


@pytest.mark.parametrize("variant", ["pytorch", "onnx", "int8-file"])
def test_evaluate_student(exported, toy_world, variant):
    from rasa_kd import evaluate

    path = exported / "model.int8.onnx" if variant == "int8-file" else exported
    metrics = evaluate.evaluate(path, toy_world["test"], onnx=variant == "onnx", latency_examples=200)
    suffix = {"pytorch": "", "onnx": "-onnx", "int8-file": "-int8"}[variant]
    written = json.loads((exported / f"metrics-test{suffix}.json").read_text())
    assert written["scores"] == metrics["scores"] and metrics["scores"]["n"] == 32
    assert metrics["kind"] == {"pytorch": "student-pytorch", "onnx": "student-onnx", "int8-file": "student-onnx-int8"}[variant]
    assert set(metrics["scores"]) >= {"accuracy", "micro_f1", "macro_f1", "mcc"}
    assert metrics["parameters"]["embedding"] > 0 and metrics["parameters"]["other"] > 0
    assert metrics["latency_ms_batch1"] > 0 and metrics["sentences_per_second"] > 0 and metrics["size_bytes"] > 0
    weights = {"pytorch": "model.safetensors", "onnx": "model.onnx", "int8-file": "model.int8.onnx"}[variant]
    assert weights in metrics["files"] and "tokenizer.json" in metrics["files"]


def test_evaluate_teacher_folder(toy_world, tmp_path):
    from rasa_kd import evaluate

    out = tmp_path / "m.json"
    metrics = evaluate.evaluate(toy_world["teacher"], toy_world["test"], out=out, latency_examples=20)
    assert metrics["kind"] == "teacher" and json.loads(out.read_text())["scores"]["n"] == 32
    assert metrics["parameters"]["total"] == metrics["parameters"]["embedding"] + metrics["parameters"]["other"]


def test_evaluate_errors(toy_world, exported, tmp_path):
    from rasa_kd import evaluate
    from rasa_kd.nlu_io import Example

    unknown = write_nlu(tmp_path / "odd.yml", toy_examples(1, seed=1) + [Example("sing", "music")])
    with pytest.raises(UserError, match="intents the model does not know: music"):
        evaluate.evaluate(exported, unknown, speed=False)
    metrics = evaluate.evaluate(exported, unknown, out=tmp_path / "m.json", speed=False, allow_unknown_labels=True)
    assert metrics["scores"]["n"] == 5 and "latency_ms_batch1" not in metrics
    with pytest.raises(UserError, match="neither a student package"):
        evaluate.evaluate(tmp_path, toy_world["test"])
    with pytest.raises(UserError, match="model not found"):
        evaluate.evaluate(tmp_path / "nothing", toy_world["test"])


def test_export_needs_a_package(tmp_path):
    from rasa_kd import export

    with pytest.raises(UserError, match="student package not found"):
        export.export(tmp_path / "nothing")
