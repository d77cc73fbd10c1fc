"""`rasa-kd export` (ONNX, int8) and `rasa-kd evaluate` on students and a teacher folder."""
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, stage_parser
from rasa_kd.errors import UserError
from rasa_kd.evaluation import calibration
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.students import load
from test_students import LABELS, toy_examples, toy_world, write_nlu  # noqa: F401 (fixture)

TEXTS = ["hello there", "goodbye my dear friend, see you later today!", "rain?", "", "book me a table now please"]
# int8 vs fp32 ONNX on the toy test sentences: measured max |probability difference| 0.0014 (BiLSTM
# wordpieces), 0.024 (BiLSTM words), 0.048 (small BERT), same argmax on all; the limits leave a 2x margin
INT8_MAX_PROBABILITY_DIFF = 0.1
INT8_MIN_ARGMAX_AGREEMENT = 0.95


def distilled(world, out, *extra):
    from rasa_kd.students import distil

    distil.distil(distil.parse(["--transfer", world["transfer"], "--dev", world["dev"], "--out", out,
                                "--batch-size", "16", "--learning-rate", "3e-3", *extra]))
    return out


@pytest.fixture(scope="module", params=["bilstm", "bilstm-words", "bert"])
def exported(request, tmp_path_factory, toy_world):
    """A BiLSTM (wordpieces or GloVe-style words) or small-BERT package with model.onnx and model.int8.onnx."""
    from rasa_kd.students import export

    bilstm = ["--hidden-size", "16", "--fc-size", "16", "--pooling", "last"]
    sizes = {"bilstm": bilstm, "bilstm-words": ["--vocab", "words", "--vectors", toy_world["vectors"], *bilstm],
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


def test_int8_is_close_to_fp32_onnx(exported, toy_world):
    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.students import load

    texts = [e.text for e in read_examples(toy_world["test"])] + TEXTS
    fp32, int8 = load(exported, runtime="onnx").predict(texts), load(exported, runtime="int8").predict(texts)
    assert np.abs(fp32 - int8).max() < INT8_MAX_PROBABILITY_DIFF
    assert np.mean(fp32.argmax(axis=1) == int8.argmax(axis=1)) >= INT8_MIN_ARGMAX_AGREEMENT


def test_offsets_are_character_spans(exported):
    from rasa_kd.students import load

    text = "Hello,  rain today!"
    vectors, offsets = load(exported).encode_tokens(text)
    assert [text[s:e] for s, e in offsets] == ["Hello", ",", "rain", "today", "!"]  # no [CLS]/[SEP]
    assert vectors.shape[0] == 5


def test_a_runtime_without_its_file_is_one_error_and_auto_takes_what_exists(toy_world, tmp_path):
    from rasa_kd.students import load

    package = distilled(toy_world, tmp_path / "s", "--epochs", "1", "--hidden-size", "8", "--fc-size", "8")
    with pytest.raises(UserError, match=r"model.onnx: not found \(run `rasa-kd export --model .* --onnx`\)"):
        load(package, runtime="onnx")
    assert load(package, runtime="auto").backend.name == "torch"


def test_deprecated_runtime_spellings_still_work_and_say_so_once(exported, caplog):
    from rasa_kd.students import load
    from rasa_kd.formats import student_package

    student_package._DEPRECATIONS_SAID.clear()
    with caplog.at_level("WARNING", logger="rasa_kd.formats.student_package"):
        first, second = load(exported, quantized=True), load(exported, quantized=True)
    assert first.runtime == second.runtime == "int8"
    assert [r.getMessage() for r in caplog.records] == ["load(quantized=True) is deprecated: use runtime 'int8'"]
    assert load(exported, onnx=True).runtime == "onnx"


KINDS = {"pytorch": "student-pytorch", "onnx": "student-onnx", "int8": "student-onnx-int8"}
WEIGHTS = {"pytorch": "model.safetensors", "onnx": "model.onnx", "int8": "model.int8.onnx"}


@pytest.mark.parametrize("variant", ["auto", "pytorch", "onnx-alias", "int8-file"])
def test_evaluate_student(exported, toy_world, variant):
    from rasa_kd.evaluation import evaluate
    from rasa_kd.formats import student_package

    deployed = student_package.resolve_runtime(exported, student_package.read_manifest(exported))
    runtime = {"auto": deployed, "pytorch": "pytorch", "onnx-alias": "onnx", "int8-file": "int8"}[variant]
    path = exported / "model.int8.onnx" if variant == "int8-file" else exported
    metrics = evaluate.evaluate(path, toy_world["test"], onnx=variant == "onnx-alias", latency_examples=200,
                                runtime="pytorch" if variant == "pytorch" else "auto", memory=False)
    suffix = {"pytorch": "", "onnx": "-onnx", "int8": "-int8"}[runtime]
    written = json.loads((exported / f"metrics-test{suffix}.json").read_text())
    assert written["scores"] == metrics["scores"] and metrics["scores"]["n"] == 32
    assert metrics["kind"] == KINDS[runtime]
    assert set(metrics["scores"]) >= {"accuracy", "micro_f1", "macro_f1", "mcc"}
    assert metrics["parameters"]["embedding"] > 0 and metrics["parameters"]["other"] > 0
    assert metrics["latency_ms_batch1"] > 0 and metrics["sentences_per_second"] > 0 and metrics["size_bytes"] > 0
    tokenizer = student_package.read_manifest(exported)["tokenizer"]["files"]
    assert set(metrics["files"]) == {WEIGHTS[runtime], "student.json", *tokenizer}
    confidence = metrics["calibration"]
    # the ECE of the confidences this runtime gives on the test sentences, recomputed here
    examples = read_examples(toy_world["test"])
    student = load(exported, runtime=runtime)
    gold = [student.labels.index(e.intent) for e in examples]
    texts = [e.text for e in examples]
    # int8 as deployed: one message at a time (its activation scales follow the batch)
    probabilities = np.concatenate([student.predict([text]) for text in texts]) if runtime == "int8" else \
        student.predict(texts)
    expected = calibration.expected_calibration_error(probabilities, gold)
    assert confidence["ece"] == pytest.approx(expected, abs=1e-4)
    assert confidence["bins"] == 15
    assert confidence["temperature"] == student_package.read_manifest(exported)["calibration"]["temperature"] > 0
    assert Path(confidence["reliability_diagram"]).read_bytes()[:4] == b"\x89PNG"
    fallback = confidence["fallback"]
    assert fallback["threshold"] is None or (fallback["precision"] >= 0.95 and 0 < fallback["kept"] <= 1)


def test_evaluate_scores_onnx_as_pytorch(exported, toy_world, tmp_path):
    from rasa_kd.evaluation import evaluate

    scores = {runtime: evaluate.evaluate(exported, toy_world["test"], out=tmp_path / f"{runtime}.json",
                                         runtime=runtime, speed=False, memory=False)["scores"]
              for runtime in ("pytorch", "onnx")}
    assert scores["onnx"] == scores["pytorch"]


@pytest.mark.parametrize("runtime", ["pytorch", "onnx", "int8"])
def test_evaluate_size_parts_add_up(exported, toy_world, tmp_path, runtime):
    from rasa_kd.evaluation import evaluate

    metrics = evaluate.evaluate(exported, toy_world["test"], out=tmp_path / "m.json", runtime=runtime,
                                speed=False, memory=False)
    parts = metrics["size_parts_bytes"]
    assert set(parts) == {"embeddings", "other", "tokenizer", "manifest"} and min(parts.values()) > 0
    assert parts["embeddings"] + parts["other"] == (exported / WEIGHTS[runtime]).stat().st_size
    assert sum(parts.values()) == metrics["size_bytes"]


def test_evaluate_measures_memory_in_a_fresh_process(exported, toy_world, tmp_path, capsys):
    from rasa_kd.evaluation import evaluate

    metrics = evaluate.evaluate(exported, toy_world["test"], out=tmp_path / "m.json", speed=False)
    memory = metrics["memory_mb"]
    assert memory["rss_loaded_mb"] > memory["rss_model_mb"] > 0
    assert memory["torch_loaded"] is False  # the deployed ONNX student, as Rasa serves it
    assert "memory (RSS)" in capsys.readouterr().out


def test_evaluate_runtime_flags():
    from rasa_kd.evaluation.evaluate import EvaluateOptions
    from rasa_kd.options import from_namespace

    parser = stage_parser("rasa_kd.evaluation.evaluate")
    parsed = [from_namespace(EvaluateOptions, parser.parse_args(["--model", "m", "--data", "d", *flags]))
              for flags in ([], ["--onnx"], ["--int8"], ["--runtime", "pytorch"])]
    assert [(o.runtime, o.onnx, o.int8) for o in parsed] == [
        ("auto", False, False), ("auto", True, False), ("auto", False, True), ("pytorch", False, False)]


def test_evaluate_teacher_folder(toy_world, tmp_path):
    from rasa_kd.evaluation import evaluate

    out = tmp_path / "m.json"
    metrics = evaluate.evaluate(toy_world["teacher"], toy_world["test"], out=out, latency_examples=20)
    assert metrics["kind"] == "teacher" and json.loads(out.read_text())["scores"]["n"] == 32
    assert metrics["parameters"]["total"] == metrics["parameters"]["embedding"] + metrics["parameters"]["other"]
    parts = metrics["size_parts_bytes"]
    # the embedding tables are float32: 4 bytes per embedding parameter
    assert parts["embeddings"] == 4 * metrics["parameters"]["embedding"]
    assert parts["embeddings"] + parts["other"] == (toy_world["teacher"] / "model.safetensors").stat().st_size
    assert sum(parts.values()) == metrics["size_bytes"] and metrics["memory_mb"]["rss_model_mb"] > 0
    assert metrics["calibration"]["temperature"] is None and 0 <= metrics["calibration"]["ece"] <= 1


def test_evaluate_errors(toy_world, exported, tmp_path):
    from rasa_kd.evaluation import evaluate
    from rasa_kd.formats.nlu_yaml import Example

    unknown = write_nlu(tmp_path / "odd.yml", toy_examples(1, seed=1) + [Example("sing", "music")])
    with pytest.raises(UserError, match="intents the model does not know: music"):
        evaluate.evaluate(exported, unknown, speed=False, memory=False)
    metrics = evaluate.evaluate(exported, unknown, out=tmp_path / "m.json", speed=False, memory=False,
                                allow_unknown_labels=True)
    assert metrics["scores"]["n"] == 5 and "latency_ms_batch1" not in metrics and "memory_mb" not in metrics
    with pytest.raises(UserError, match="--runtime onnx applies to student packages"):
        evaluate.evaluate(toy_world["teacher"], toy_world["test"], onnx=True)
    without_int8 = shutil.copytree(exported, tmp_path / "package")
    (without_int8 / "model.int8.onnx").unlink()
    with pytest.raises(UserError, match=r"model.int8.onnx: not found \(run `rasa-kd export .* --quantize`\)"):
        evaluate.evaluate(without_int8, toy_world["test"], runtime="int8")
    with pytest.raises(UserError, match="not a student's ONNX file"):
        evaluate.evaluate(shutil.copy(exported / "model.onnx", tmp_path / "package" / "other.onnx"), toy_world["test"])
    with pytest.raises(UserError, match="neither a student package"):
        evaluate.evaluate(tmp_path, toy_world["test"])
    with pytest.raises(UserError, match="model not found"):
        evaluate.evaluate(tmp_path / "nothing", toy_world["test"])


def test_export_needs_a_package(tmp_path):
    from rasa_kd.students import export

    with pytest.raises(UserError, match="student package not found"):
        export.export(tmp_path / "nothing")


KILLED_WHILE_QUANTIZING = """
import os, signal, sys
from pathlib import Path
from rasa_kd.students import export

def half_written_then_killed(source, target, **kwargs):
    Path(target).write_bytes(Path(source).read_bytes()[:1000])
    os.kill(os.getpid(), signal.SIGKILL)

export.quantize_dynamic = half_written_then_killed
export.export(Path(sys.argv[1]), onnx=True, quantized=True, data=Path(sys.argv[2]))
"""


def test_sigkill_during_export_leaves_a_loadable_package_and_the_rerun_completes(toy_world, tmp_path):
    from rasa_kd.students import export, load
    from rasa_kd.formats import student_package

    student = distilled(toy_world, tmp_path / "student", "--epochs", "2", "--hidden-size", "16", "--fc-size", "16")
    manifest = student_package.read_manifest(student)
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_QUANTIZING, str(student), str(toy_world["test"])],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (student / "model.int8.onnx").exists() and student_package.read_manifest(student) == manifest
    texts = [e.text for e in toy_examples(3, seed=5)]
    assert np.allclose(load(student, runtime="auto").predict(texts), load(student).predict(texts), atol=1e-5)
    export.export(student, onnx=True, quantized=True, data=toy_world["test"])
    assert not [p.name for p in student.iterdir() if p.name.startswith(".")]  # the killed run's temporary file
    assert student_package.read_manifest(student)["runtime"] in ("int8", "onnx")
    assert load(student, runtime="int8").predict(texts).shape == (len(texts), len(LABELS))


@pytest.mark.parametrize("file,runtime,message", [
    ("model.onnx", "onnx", "cannot load the ONNX model"), ("model.int8.onnx", "int8", "cannot load the ONNX model"),
    ("model.safetensors", "pytorch", "corrupt weights file")])
def test_truncated_model_file_is_one_line_in_the_cli(exported, toy_world, tmp_path, capsys, file, runtime, message):
    broken = shutil.copytree(exported, tmp_path / "package")
    (broken / file).write_bytes((exported / file).read_bytes()[:(exported / file).stat().st_size // 2])
    status, errors = run_cli(["evaluate", "--model", str(broken), "--data", str(toy_world["test"]),
                              "--runtime", runtime, "--no-speed", "--no-memory"], capsys)
    (line,) = [line for line in errors if line.startswith("rasa-kd evaluate: error:")]
    assert status == 2 and message in line and not [line for line in errors if "Traceback" in line], errors


def test_calibrate_command_refits_the_temperature_in_place(exported, toy_world, tmp_path, capsys):
    from rasa_kd.students import load
    from rasa_kd.formats import student_package

    copy = tmp_path / "student"
    shutil.copytree(exported, copy)
    student_package.update_manifest(copy, calibration={"temperature": 1.0})
    texts = [e.text for e in toy_examples(6, seed=31)]
    before = load(copy).predict(texts)
    status, err = run_cli(["calibrate", "--model", str(copy), "--data", str(toy_world["dev"])], capsys)
    assert status == 0, err
    record = student_package.read_manifest(copy)["calibration"]
    assert record["fitted_on"] == str(toy_world["dev"]) and record["nll_after"] <= record["nll_before"]
    after = load(copy).predict(texts)
    assert np.array_equal(before.argmax(axis=1), after.argmax(axis=1))
    assert record["temperature"] == 1.0 or not np.allclose(before, after)
    status, err = run_cli(["calibrate", "--model", str(copy), "--data", str(tmp_path / "missing.yml")], capsys)
    assert status == 2 and len(err) == 1


def test_evaluate_reports_unknown_intents(exported, toy_world, tmp_path, capsys):
    from rasa_kd.evaluation import evaluate
    from rasa_kd.formats.nlu_yaml import Example

    unknown = write_nlu(tmp_path / "unknown.yml", [Example(text, "never_seen") for text in
                                                   ("zzqx blorf", "the quarterly tax form", "purple elephants dance",
                                                    "!!!", "how tall is the eiffel tower")])
    metrics = evaluate.evaluate(exported, toy_world["test"], tmp_path / "m.json", speed=False, memory=False,
                                unknown=unknown, runtime="pytorch")  # deterministic, for the recount below
    report = metrics["unknown_intents"]
    student = load(exported, runtime="pytorch")
    known = student.predict([e.text for e in read_examples(toy_world["test"])]).max(axis=1)
    unknown_top = student.predict([e.text for e in read_examples(unknown)]).max(axis=1)
    # AUROC: the share of (known, unknown) pairs the top confidence orders right, ties half
    pairs = [(k > u) + 0.5 * (k == u) for k in known for u in unknown_top]
    assert report["n"] == 5 and report["auroc"] == pytest.approx(np.mean(pairs), abs=1e-3)
    assert report["fpr_at_95_tpr"] == pytest.approx(np.mean(unknown_top >= np.quantile(known, 0.05)), abs=1e-4)
    assert report["threshold"] == metrics["calibration"]["fallback"]["threshold"]
    assert "unknown intents" in capsys.readouterr().out


def test_fallback_command_stores_a_score_the_runtime_reads(exported, toy_world, tmp_path, capsys):
    from rasa_kd.formats import student_package

    copy = shutil.copytree(exported, tmp_path / "student")
    train = write_nlu(tmp_path / "train.yml", toy_examples(12, seed=41))
    status, err = run_cli(["fallback", "--model", str(copy), "--train", str(train), "--dev", str(toy_world["dev"]),
                           "--score", "max-probability+nearest"], capsys)
    assert status == 0, err
    manifest = student_package.read_manifest(copy)
    entry = manifest["fallback"]
    assert entry["score"] == "max-probability+nearest" and 0.0 <= (entry["threshold"] or 0.0) <= 1.0
    assert "fallback.safetensors" in student_package.runtime_files(manifest, "int8")
    dev_texts = [e.text for e in read_examples(toy_world["dev"])]
    with_fallback, without = load(copy, runtime="pytorch"), load(exported, runtime="pytorch")  # batch-independent
    analyses = with_fallback.analyse(dev_texts)
    judged = np.array([analysis.fallback_confidence for analysis in analyses])
    assert ((judged > 0) & (judged < 1)).all()
    assert [a.fallback_confidence for a in without.analyse(dev_texts)] == [None] * len(dev_texts)
    np.testing.assert_allclose([a.probabilities for a in analyses],
                               [a.probabilities for a in without.analyse(dev_texts)])
    seen, plain = with_fallback.confidences(dev_texts), without.confidences(dev_texts)
    assert np.allclose(seen.max(axis=1), judged, atol=1e-6)
    assert (np.argsort(-seen, axis=1, kind="stable") == np.argsort(-plain, axis=1, kind="stable")).all()
    status, err = run_cli(["fallback", "--model", str(copy), "--train", str(train), "--dev", str(toy_world["dev"]),
                           "--score", "loudness"], capsys)
    assert status == 2 and len(err) == 1 and "loudness" in err[0]
