"""Small students: vocabulary pruning, narrower embeddings, presets and the options objects."""
import dataclasses
import re
import shutil

import numpy as np
import pytest

from rasa_kd.errors import UserError
from test_students import LABELS, toy_examples, toy_world  # noqa: F401 (fixture)

TINY = ["--hidden-size", "16", "--fc-size", "16", "--batch-size", "16", "--epochs", "4", "--patience", "0"]
UNSEEN = ["zzqx blorf glarb", "สวัสดีครับ", "hello 🙂🙂", "", "!!!"]


def distil(world, out, *extra):
    from rasa_kd.students import distil as stage

    options = stage.parse(["--transfer", world["transfer"], "--dev", world["dev"], "--test", world["test"],
                           "--out", out, *extra])
    return stage.distil(options)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, toy_world):
    """A pruned wordpiece BiLSTM with 8-d embeddings, exported to ONNX (fp32 + int8)."""
    from rasa_kd.students import export

    out = tmp_path_factory.mktemp("pruned") / "student"
    distil(toy_world, out, *TINY, "--embedding-dim", "8", "--learning-rate", "0.01", "--epochs", "8",
           "--prune-keep-common", "0")
    export.export(out, onnx=True, quantized=True, data=toy_world["dev"])
    return out


def test_pruned_vocabulary_keeps_only_transfer_set_pieces(pruned, toy_world):
    import json

    from transformers import AutoTokenizer

    manifest = json.loads((pruned / "student.json").read_text())
    teacher_vocab = len(AutoTokenizer.from_pretrained(str(toy_world["teacher"])))
    spec = manifest["tokenizer"]
    assert spec["pruned"] and spec["vocab_size"] < teacher_vocab and len(spec["teacher_ids"]) == spec["vocab_size"]
    assert not (pruned / "vocab.txt").exists() and spec["files"] == ["tokenizer.json"]
    config = manifest["config"]
    assert config["embedding_dim"] == 8 and config["vocab_size"] == spec["vocab_size"]
    assert manifest["parameters"]["embedding"] == 2 * spec["vocab_size"] * 8  # multichannel: two V x 8 tables
    assert manifest["metrics"]["test"]["accuracy"] >= 0.6  # chance 0.25
    fitted = manifest["calibration"]
    assert fitted["fitted_on"] == "dev" and fitted["temperature"] > 0 and fitted["nll_after"] <= fitted["nll_before"]


def test_pruned_student_same_predictions_in_pytorch_and_onnx(pruned):
    from rasa_kd.students import load

    texts = [e.text for e in toy_examples(5, seed=21)] + UNSEEN
    torch_student, onnx_student = load(pruned, runtime="pytorch"), load(pruned, runtime="onnx")
    assert np.allclose(torch_student.predict(texts), onnx_student.predict(texts), atol=1e-5)
    assert torch_student.predict_labels(texts) == onnx_student.predict_labels(texts)


def test_unseen_words_map_to_unk(pruned):
    from rasa_kd.students import load

    student = load(pruned)
    unk = student.tokenizer.backend.token_to_id("[UNK]")
    batch = student.tokenizer(["zzqx blorf"])
    assert set(batch["input_ids"][0].tolist()) == {unk}
    probabilities = student.predict(UNSEEN)
    assert probabilities.shape == (len(UNSEEN), len(LABELS)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_pruned_package_round_trips(pruned, tmp_path):
    from rasa_kd.students import load

    copy = tmp_path / "copy"
    shutil.copytree(pruned, copy)
    texts = [e.text for e in toy_examples(3, seed=5)] + UNSEEN
    assert np.allclose(load(pruned).predict(texts), load(copy).predict(texts))
    assert load(copy, runtime="auto").runtime in ("int8", "onnx")


def test_int8_is_deployed_only_when_it_keeps_dev_accuracy(pruned):
    import json

    summary = json.loads((pruned / "export.json").read_text())
    manifest = json.loads((pruned / "student.json").read_text())
    assert manifest["runtime"] == summary["runtime"]
    limit = max(0.005, 1 / summary["int8"]["data_examples"])
    expected = "int8" if summary["int8"]["accuracy_change"] >= -limit - 1e-9 else "onnx"
    assert summary["runtime"] == expected and summary["runtime_reason"]


@pytest.mark.parametrize("change, examples, runtime", [(-1 / 58, 58, "int8"), (-2 / 58, 58, "onnx"),
                                                       (-4 / 1000, 1000, "int8"), (-6 / 1000, 1000, "onnx"),
                                                       (0.01, 30, "int8")])
def test_int8_may_lose_one_dev_example_or_half_a_point(change, examples, runtime):
    from rasa_kd.students.export import deployed_runtime

    chosen, why = deployed_runtime({"accuracy_change": change, "data_examples": examples}, 0.005)
    assert chosen == runtime and f"on {examples} examples" in why


def test_int8_must_keep_the_entities_too():
    from rasa_kd.students.export import deployed_runtime

    checked = {"accuracy_change": 0.0, "data_examples": 1000, "data_entities": 400}
    chosen, why = deployed_runtime({**checked, "entity_f1_change": -0.02}, 0.005)
    assert chosen == "onnx" and "entity F1 -0.0200 on 400 entities" in why
    assert deployed_runtime({**checked, "entity_f1_change": -0.004}, 0.005)[0] == "int8"
    # one entity of a small dev set is within the limit, as one example is for intents
    assert deployed_runtime({**checked, "data_entities": 100, "entity_f1_change": -0.009}, 0.005)[0] == "int8"
