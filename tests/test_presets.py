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


def test_words_vocabulary_pruned_to_the_transfer_set(toy_world, tmp_path):
    manifest = distil(toy_world, tmp_path / "words", *TINY, "--vocab", "words", "--vectors", toy_world["vectors"],
                      "--epochs", "1")
    assert manifest["tokenizer"]["vocab_size"] <= 2 + 40  # [PAD], [UNK] and the toy task's words only


def test_small_bert_pruned_narrow_embeddings_from_teacher(toy_world, tmp_path):
    from rasa_kd.students import load

    manifest = distil(toy_world, tmp_path / "bert", "--student", "bert", "--hidden-size", "32", "--heads", "2",
                      "--layers", "1", "--intermediate", "64", "--init-from-teacher", "--embedding-dim", "8",
                      "--hidden-weight", "0.1", "--epochs", "1", "--batch-size", "16")
    assert manifest["config"]["teacher_embedding_dim"] == 8 and manifest["tokenizer"]["pruned"]
    assert load(tmp_path / "bert").predict(UNSEEN).shape == (len(UNSEEN), len(LABELS))


def test_presets_and_explicit_flags(toy_world, tmp_path):
    from rasa_kd.students import distil as stage
    from rasa_kd.students.presets import PRESETS, distil_options

    required = ["--transfer", "t", "--dev", "d", "--out", "o"]
    assert dataclasses.replace(stage.parse(required), transfer=None, dev=None, out=None) == stage.DistilOptions()
    fast = stage.parse([*required, "--preset", "fast"])
    assert all(getattr(fast, key) == value for key, value in PRESETS["fast"].distil.items())
    for argv in (["--hidden-size", "50", "--preset", "fast"], ["--preset", "fast", "--hidden-size", "50"]):
        options = stage.parse([*required, *argv])
        assert options.hidden_size == 50 and options.embedding_dim == PRESETS["fast"].distil["embedding_dim"]
    dims = [distil_options(name).embedding_dim for name in ("fast", "balanced", "accurate")]
    assert dims == sorted(set(dims)) and distil_options().preset == "balanced"  # each preset a step larger
    with pytest.raises(UserError, match="unknown preset"):
        distil_options("tiny")


def test_transfer_size_scales_with_the_data():
    from rasa_kd.students.presets import PRESETS

    balanced = PRESETS["balanced"]
    sizes = [balanced.transfer_size(n) for n in (100, 2_000, 10_000)]
    assert sizes == [balanced.min_size, 10 * 2_000, balanced.max_size]


def test_options_record_in_the_package(pruned):
    import json

    recipe = json.loads((pruned / "student.json").read_text())["recipe"]
    assert recipe["preset"] == "balanced" and recipe["embedding_dim"] == 8 and recipe["prune_vocab"] is True
    assert "out" not in recipe and "force" not in recipe


def test_small_bert_narrow_embeddings_without_teacher_layers(toy_world, tmp_path):
    from rasa_kd.students import load

    manifest = distil(toy_world, tmp_path / "bert", "--student", "bert", "--hidden-size", "16", "--heads", "2",
                      "--layers", "1", "--intermediate", "32", "--embedding-dim", "8", "--epochs", "1")
    assert manifest["config"]["teacher_embedding_dim"] == 8 and manifest["config"]["hidden_size"] == 16
    assert load(tmp_path / "bert").predict(UNSEEN).shape == (len(UNSEEN), len(LABELS))


def test_presets_apply_their_bilstm_recipe_to_bilstms_only():
    from rasa_kd.students import distil as stage

    bert = stage.parse(["--transfer", "t", "--dev", "d", "--out", "o", "--preset", "accurate", "--student", "bert"])
    assert bert.hidden_size is None and bert.preset == "accurate"  # the small-BERT default (204), not 256


def test_pruning_keeps_the_most_common_pieces(tmp_path):
    from collections import Counter

    from transformers import BertTokenizerFast

    from rasa_kd.students.tokenizers import WordpieceTokenizer, prune_wordpieces

    vocab = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "e", "l", "o", "r", "w",
             "##a", "##e", "##l", "##o", "the", "hello", "world", "##s", "bear", "bell"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = WordpieceTokenizer.from_pretrained(BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")), 16,
                                                   special_tokens=False)
    seen = Counter(tokenizer(["bell"])["input_ids"][0].tolist())
    pruned, kept = prune_wordpieces(tokenizer, seen, keep_characters=False, keep_common=2)
    assert [vocab[i] for i in kept] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "hello", "bell"]
    assert pruned.backend.encode("hello bell", add_special_tokens=False).tokens == ["hello", "bell"]
    assert pruned.backend.encode("world", add_special_tokens=False).tokens == ["[UNK]"]
    only_seen, _ = prune_wordpieces(tokenizer, seen, keep_characters=False, keep_common=0)
    assert "hello" not in only_seen.backend.get_vocab() and "bell" in only_seen.backend.get_vocab()


def test_pruning_keeps_the_common_pieces_and_characters_of_the_data_s_scripts(tmp_path):
    from collections import Counter

    from transformers import BertTokenizerFast

    from rasa_kd.students.tokenizers import WordpieceTokenizer, prune_wordpieces

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", "e", "h", "l", "o", "ก", "า", "中",
             "##l", "##o", "##า", "中文", "กา", "hello", "hell"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = WordpieceTokenizer.from_pretrained(BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")), 16,
                                                   special_tokens=False)

    def kept_for(text):
        _, kept = prune_wordpieces(tokenizer, Counter(tokenizer([text])["input_ids"][0].tolist()), keep_common=10)
        return {vocab[i] for i in kept} - {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

    # English data: Latin letters only, so no Thai or Chinese characters or pieces
    assert kept_for("hello") == {"!", "e", "h", "l", "o", "##l", "##o", "hello", "hell"}
    # Thai beside English (2 of 7 letters: a main script): its characters and common pieces too
    assert kept_for("hello กา") == {"!", "e", "h", "l", "o", "##l", "##o", "hello", "hell", "ก", "า", "##า", "กา"}


def test_a_wrong_preset_or_runtime_is_the_same_one_line_everywhere(capsys, tmp_path):
    from rasa.shared.exceptions import InvalidConfigException

    from conftest import run_cli
    from rasa_kd.components.student_training import check_config

    message = "unknown preset 'tiny' (choose from fast, balanced, accurate)"
    for argv in (["distil", "--transfer", "t", "--dev", "d.yml", "--out", "o", "--preset", "tiny"],
                 ["pipeline", "--nlu", "n.yml", "--out", str(tmp_path / "build"), "--preset", "tiny"]):
        status, errors = run_cli(argv, capsys)
        assert (status, errors) == (2, [f"rasa-kd {argv[0]}: error: {message}"])
    assert not (tmp_path / "build").exists()
    with pytest.raises(InvalidConfigException, match=f"^StudentIntentClassifier: {re.escape(message)}$"):
        check_config({"preset": "tiny", "runtime": "auto"}, "StudentIntentClassifier")
    with pytest.raises(InvalidConfigException, match=r"^StudentIntentClassifier: unknown runtime 'gpu' \(choose"):
        check_config({"preset": "balanced", "runtime": "gpu"}, "StudentIntentClassifier")
    check_config({"student": "some/package", "preset": "tiny", "runtime": "int8"}, "StudentIntentClassifier")
