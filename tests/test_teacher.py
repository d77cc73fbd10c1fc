"""`rasa-kd teacher`: fine-tuning, the teacher folder, pooling, bad input."""
import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, stage_parser
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
from rasa_kd.options import from_namespace
from rasa_kd.teachers import fine_tune
from rasa_kd.teachers.fine_tune import TeacherOptions, TeacherSettings
from rasa_kd.teachers.folder import TeacherFolder, length_sorted_batches


def test_teacher_learns_the_toy_task(tiny_teacher_dir, toy_nlu):
    metrics = json.loads((tiny_teacher_dir / "metrics.json").read_text())
    assert metrics["dev"]["accuracy"] >= 0.6  # chance is 0.25 with 4 intents
    assert metrics["history"][-1]["dev_micro_f1"] > metrics["history"][0]["dev_micro_f1"] - 1e-9
    assert metrics["parameters"] > 0 and metrics["train_seconds"] > 0
    folder = TeacherFolder(tiny_teacher_dir)
    labels = folder.labels
    assert labels == json.loads((tiny_teacher_dir / "labels.json").read_text()) == sorted(labels)
    test = read_examples(toy_nlu["test"])
    logits = folder.predict_logits([e.text for e in test])
    accuracy = np.mean([labels[i] == e.intent for i, e in zip(logits.argmax(axis=1), test)])
    assert accuracy >= 0.6


def test_mean_pooling_is_applied_on_load(tiny_teacher_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = TeacherFolder(tiny_teacher_dir)
    assert folder.pooling == "mean"
    model, tokenizer = folder.classifier, folder.tokenizer
    plain = AutoModelForSequenceClassification.from_pretrained(str(tiny_teacher_dir)).eval()
    batch = tokenizer(["hello my friend", "pizza"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = plain.bert(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = plain.classifier((hidden * mask).sum(1) / mask.sum(1))
        got = model(**batch).logits
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain(**batch).logits)


def test_cls_pooling_with_a_split_dev_set(tiny_bert_dir, toy_nlu, tmp_path, capsys):
    out = tmp_path / "cls"
    args = ["teacher", "--train", str(toy_nlu["train"]), "--model", str(tiny_bert_dir), "--out", str(out),
            "--pooling", "cls", "--epochs", "1", "--max-length", "16", "--quiet"]
    assert run_cli(args, capsys)[0] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dev_source"].startswith("stratified 0.1")
    assert metrics["train_examples"] + metrics["dev_examples"] == 96
    assert json.loads((out / "rasa_kd_teacher.json").read_text())["pooling"] == "cls"


def test_stratified_split_keeps_every_intent_and_singletons_in_train():
    examples = [Example(f"s{i}", "a") for i in range(20)] + [Example(f"t{i}", "b") for i in range(10)]
    examples.append(Example("only", "c"))
    train, dev = fine_tune.stratified_split(examples, 0.1, seed=0)
    assert sorted(e.intent for e in dev) == ["a", "a", "b"]
    assert {e.text for e in train} | {e.text for e in dev} == {e.text for e in examples}
    assert fine_tune.stratified_split(examples, 0.1, seed=0) == (train, dev)


def test_length_sorted_batches_cover_every_row_once():
    lengths = [random.Random(1).randint(1, 9) for _ in range(50)]
    batches = length_sorted_batches(lengths, 8)
    assert sorted(i for b in batches for i in b) == list(range(50))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


@pytest.fixture
def bad_inputs(tmp_path, toy_nlu, tiny_bert_dir):
    not_a_model = tmp_path / "not_a_model"
    not_a_model.mkdir()
    (not_a_model / "weights.bin").write_text("x")
    empty = tmp_path / "empty.yml"
    write_examples(empty, [])
    dev_extra = tmp_path / "dev_extra.yml"
    write_examples(dev_extra, read_examples(toy_nlu["dev"]) + [Example("what is love", "philosophy")])
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    foreign = tmp_path / "foreign.yml"  # Thai: the toy teacher's vocabulary has none of its letters
    thai = ["ตั้งนาฬิกาปลุก", "พยากรณ์อากาศ", "เตือนฉัน"]
    write_examples(foreign, [Example(f"{thai[i % 3]} {i}", e.intent)
                             for i, e in enumerate(read_examples(toy_nlu["train"]))])
    return {"not_a_model": not_a_model, "empty": empty, "dev_extra": dev_extra, "full": full, "foreign": foreign}


@pytest.mark.parametrize("case, fragment", [
    ("model_folder", "not a model folder"),
    ("missing_model", "not found"),
    ("dev_label", "philosophy"),
    ("empty_train", "no intent examples"),
    ("out_exists", "--force"),
    ("foreign_language", "--allow-unknown-tokens"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(case, fragment, bad_inputs, toy_nlu, tiny_bert_dir,
                                                    tmp_path, capsys):
    out = tmp_path / "teacher_out"
    train, dev, model = toy_nlu["train"], toy_nlu["dev"], tiny_bert_dir
    if case == "model_folder":
        model = bad_inputs["not_a_model"]
    elif case == "missing_model":
        model = tmp_path / "no" / "such" / "model"
    elif case == "dev_label":
        dev = bad_inputs["dev_extra"]
    elif case == "empty_train":
        train = bad_inputs["empty"]
    elif case == "out_exists":
        out = bad_inputs["full"]
    elif case == "foreign_language":
        train = bad_inputs["foreign"]
    status, err = run_cli(["teacher", "--train", str(train), "--dev", str(dev), "--model", str(model),
                           "--out", str(out), "--epochs", "1", "--quiet"], capsys)
    assert status == 2
    assert len(err) == 1 and fragment in err[0], err
    if case == "out_exists":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".teacher_out")]


def test_option_defaults_are_the_command_line_defaults():
    parsed = from_namespace(TeacherOptions, stage_parser("rasa_kd.teachers.fine_tune").parse_args(["--train", "t.yml",
                                                                                       "--out", "o"]))
    assert parsed == TeacherOptions(train=Path("t.yml"), out=Path("o"))
    assert fine_tune.settings_of(parsed) == TeacherSettings()


def test_unknown_word_share(tiny_bert_dir):
    from transformers import AutoTokenizer

    from rasa_kd.teachers.fine_tune import unknown_word_share

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    assert unknown_word_share(tokenizer, ["ตั้งนาฬิกาปลุก"]) == 1.0
    assert unknown_word_share(tokenizer, [" ".join(["ตั้ง", *["a"] * 9])]) == pytest.approx(0.1)
    assert unknown_word_share(tokenizer, []) == 0.0


def test_better_epoch_lets_the_loss_decide_within_one_dev_sentence():
    from rasa_kd.teachers.fine_tune import better_epoch

    # a 28-sentence dev: epoch 5 has one sentence less right than epoch 2 but half its loss
    assert better_epoch((22 / 28, 0.77), (23 / 28, 1.50), 28)
    assert not better_epoch((21 / 28, 0.50), (23 / 28, 1.50), 28)  # two sentences: F1 decides
    assert better_epoch((0.8604, 0.678), (0.8496, 0.600), 931)  # a large dev: F1 decides
    assert not better_epoch((0.9806, 0.098), (0.9806, 0.095), 1907)


def test_a_teacher_that_predicts_one_class_is_reported(capsys):
    gold = ["acceptable", "unacceptable", "acceptable"]
    fine_tune.warn_if_collapsed(gold, ["acceptable"] * 3, 2e-4)
    warning = capsys.readouterr().err
    assert "'acceptable' for every dev sentence" in warning and "--lr 0.0002" in warning
    fine_tune.warn_if_collapsed(gold, ["acceptable", "unacceptable", "unacceptable"], 2e-4)
    fine_tune.warn_if_collapsed(["greet", "greet"], ["greet", "greet"], 2e-4)  # a one-class dev set is no sign
    assert capsys.readouterr().err == ""


def test_a_collapsed_teacher_is_trained_again_at_a_tenth_of_the_default_lr(monkeypatch, capsys):
    rates = []

    def fit(hf_model, model_name, tokenizer, labels, train, train_set, dev_set, texts, settings, progress, tags=None):
        rates.append(settings.lr)
        predicted = ["a", "a"] if len(rates) == 1 else ["a", "b"]  # the first fine-tuning diverges
        return fine_tune.Fit(hf_model, None, predicted, train_seconds=10.0, dev_seconds=1.0)

    monkeypatch.setattr(fine_tune, "fit", fit)
    monkeypatch.setattr(fine_tune, "load_pretrained", lambda name, labels, seed: (None, "reloaded"))
    dev = [Example("x", "a"), Example("y", "b")]
    kept, used, retried_from = fine_tune.fit_with_retry("loaded", None, None, ["a", "b"], None, [None] * 320, None, dev,
                                                      TeacherSettings(), False)
    assert rates == [2e-4, pytest.approx(2e-5)] and used.lr == pytest.approx(2e-5) and retried_from == 2e-4
    assert kept.predicted == ["a", "b"] and kept.train_seconds == 20.0
    assert kept.hf_model == "reloaded"  # the retry starts from the pretrained weights, not the diverged ones
    assert "training again at 2e-05" in capsys.readouterr().err

    rates.clear()  # an explicit --lr is the user's: warned about, not changed
    kept, used, retried_from = fine_tune.fit_with_retry("loaded", None, None, ["a", "b"], None, [None] * 320, None, dev,
                                                      TeacherSettings(lr=1e-3), False)
    assert rates == [1e-3] and used.lr == 1e-3 and retried_from is None
    assert "'a' for every dev sentence" in capsys.readouterr().err


def test_a_small_training_set_gets_at_least_min_steps():
    settings = TeacherSettings()  # 6 epochs, batch 32, patience 3, 300 steps at least
    assert fine_tune.schedule(270, settings) == {"epochs": 34, "patience": 17}  # 9 steps an epoch
    assert fine_tune.schedule(1_600, settings) == {}  # 50 steps x 6 epochs = 300: as given
    assert fine_tune.schedule(2_853, settings) == {}
    assert fine_tune.schedule(270, TeacherSettings(min_steps=0)) == {}


def test_refit_trains_again_on_train_and_dev_for_the_picked_epochs(tiny_bert_dir, toy_nlu, tmp_path, capsys,
                                                                   monkeypatch):
    seen = []
    original = fine_tune.fine_tune

    def recording(model, tokenizer, train_set, dev_set, *args, **kwargs):
        seen.append((len(train_set), dev_set is not None, kwargs.get("stop_after")))
        return original(model, tokenizer, train_set, dev_set, *args, **kwargs)

    monkeypatch.setattr(fine_tune, "fine_tune", recording)
    out = tmp_path / "refit"
    args = ["teacher", "--train", str(toy_nlu["train"]), "--model", str(tiny_bert_dir), "--out", str(out),
            "--epochs", "2", "--max-length", "16", "--refit", "--quiet"]
    assert run_cli(args, capsys)[0] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    first, second = seen
    assert first == (metrics["train_examples"], True, None)
    # the refit: every sentence, no dev set, stopped where the first fit's dev set picked
    assert second == (metrics["train_examples"] + metrics["dev_examples"], False, metrics["best_epoch"])
    assert metrics["refit"]["examples"] == 96 and metrics["refit"]["epochs"] == metrics["best_epoch"]
    assert 0 <= metrics["dev"]["accuracy"] <= 1  # the first fit's dev scores
    assert TeacherFolder(out).predict_logits(["hello"]).shape == (1, len(TeacherFolder(out).labels))
