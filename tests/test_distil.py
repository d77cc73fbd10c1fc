"""`rasa-kd distil`: training students on a toy transfer set, resuming, and clear errors."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from rasa_kd.errors import UserError
from test_students import LABELS, toy_examples, toy_world, write_nlu, write_transfer  # noqa: F401 (fixture)

TINY_BILSTM = ["--hidden-size", "16", "--fc-size", "16", "--batch-size", "16"]
TINY_BERT = ["--student", "bert", "--hidden-size", "16", "--heads", "2", "--layers", "2", "--intermediate", "32",
             "--batch-size", "16"]


def distil_argv(world, out, *extra):
    return ["--transfer", world["transfer"], "--dev", world["dev"], "--test", world["test"], "--out", out, *extra]


def run_distil(world, out, *extra, callbacks=()):
    from rasa_kd.students import distil

    return distil.distil(distil.parse(distil_argv(world, out, *extra)), callbacks=callbacks)


def test_wordpiece_multichannel_bilstm_beats_chance(toy_world, tmp_path):
    manifest = run_distil(toy_world, tmp_path / "student", *TINY_BILSTM, "--epochs", "8", "--learning-rate", "1e-2",
                          "--patience", "0")
    assert manifest["tokenizer"]["kind"] == "wordpieces" and manifest["config"]["mode"] == "multichannel"
    assert manifest["metrics"]["test"]["accuracy"] >= 0.8  # chance: 0.25
    assert (tmp_path / "student" / "tokenizer.json").is_file()
    # a 40-sentence dev file: epochs are also scored on 10 % of the augmented sentences, held out of training
    assert manifest["recipe"]["selection"] == "teacher" and manifest["recipe"]["held_out"] == 16
    assert manifest["teacher"]["fingerprint"] and manifest["recipe"]["transfer_sources"] == {"original": 160, "rules": 144}
    history = manifest["recipe"]["dev_history"]
    assert [round(h["epoch"]) for h in history] == list(range(1, 9)) and 0 <= history[-1]["accuracy"] <= 1


def test_small_bert_beats_chance(toy_world, tmp_path):
    manifest = run_distil(toy_world, tmp_path / "student", *TINY_BERT, "--epochs", "8", "--learning-rate", "3e-3",
                          "--loss", "ce", "--temperature", "2", "--hard-weight", "0.3")
    assert manifest["architecture"] == "bert" and manifest["config"]["projection"] == "linear"
    assert manifest["recipe"]["loss"] == "ce" and manifest["recipe"]["hard_weight"] == 0.3
    assert manifest["metrics"]["test"]["accuracy"] >= 0.6


def test_small_bert_with_hidden_state_loss_saves_the_student_only(toy_world, tmp_path):
    from rasa_kd.students import load

    manifest = run_distil(toy_world, tmp_path / "student", *TINY_BERT, "--epochs", "8", "--learning-rate", "3e-3",
                          "--hidden-weight", "0.2", "--patience", "0")
    # the toy teacher's hidden states are random (its logits come from keyword rules), so β stays small
    assert manifest["recipe"]["hidden_weight"] == 0.2 and manifest["metrics"]["test"]["accuracy"] >= 0.5  # chance 0.25
    student = load(tmp_path / "student")  # no teacher, no projection in the package
    assert student.predict(["hello there"]).shape == (1, len(LABELS))
    with pytest.raises(UserError, match="--hidden-weight"):
        run_distil(toy_world, tmp_path / "bilstm", *TINY_BILSTM, "--hidden-weight", "1.0")


def with_sentence_vectors(world, folder):
    """A copy of the world's transfer set with a `vectors` column as `rasa-kd label --vectors` adds it:
    here the teacher's logits through a fixed random projection to 12 dimensions."""
    import datasets

    from rasa_kd.formats import transfer_set

    dataset = datasets.load_from_disk(str(world["transfer"]))
    projection = np.random.default_rng(0).normal(size=(len(LABELS), 12))
    vectors = (np.asarray(dataset["logits"], dtype=np.float32) @ projection).astype(np.float32)
    dataset.add_column(transfer_set.VECTORS, vectors.tolist()).save_to_disk(str(folder))
    for name in ("labels.json", "label.json"):
        (folder / name).write_text((world["transfer"] / name).read_text())
    return {**world, "transfer": folder}


def test_bilstm_with_sentence_vector_loss_saves_the_student_only(toy_world, tmp_path):
    from rasa_kd.students import load

    world = with_sentence_vectors(toy_world, tmp_path / "transfer-vectors")
    manifest = run_distil(world, tmp_path / "student", *TINY_BILSTM, "--epochs", "8", "--learning-rate", "1e-2",
                          "--patience", "0", "--vector-weight", "1")
    assert manifest["recipe"]["vector_weight"] == 1.0 and manifest["metrics"]["test"]["accuracy"] >= 0.8
    student = load(tmp_path / "student")  # no projection in the package
    assert student.predict(["hello there"]).shape == (1, len(LABELS))
    with pytest.raises(UserError, match="label --vectors"):
        run_distil(toy_world, tmp_path / "no-vectors", *TINY_BILSTM, "--vector-weight", "1")
    with pytest.raises(UserError, match="--vector-weight"):
        run_distil(world, tmp_path / "both", *TINY_BERT, "--vector-weight", "1", "--hidden-weight", "1")


def test_small_bert_init_from_teacher_and_pca(toy_world, tmp_path):
    from rasa_kd.students import load

    run_distil(toy_world, tmp_path / "s", "--student", "bert", "--hidden-size", "32", "--heads", "2", "--layers", "1",
               "--intermediate", "64", "--init-from-teacher", "--projection", "pca", "--epochs", "1")
    assert load(tmp_path / "s").predict(["hello"]).shape == (1, 4)
    with pytest.raises(UserError, match="--init-from-teacher needs"):
        run_distil(toy_world, tmp_path / "t", *TINY_BERT, "--init-from-teacher", "--epochs", "1")


class Interrupt(Exception):
    pass


def interrupt_after_epoch(epoch: int):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.epoch >= epoch:
                raise Interrupt()

    return Stop()


def test_resume_from_last_checkpoint(toy_world, tmp_path, capsys):
    from rasa_kd.students import load

    argv = [*TINY_BILSTM, "--vocab", "words", "--vectors", str(toy_world["vectors"]), "--learning-rate", "0.01",
            "--epochs", "3"]
    run_distil(toy_world, tmp_path / "straight", *argv)
    with pytest.raises(Interrupt):
        run_distil(toy_world, tmp_path / "resumed", *argv, callbacks=[interrupt_after_epoch(2)])
    assert not (tmp_path / "resumed").exists()
    assert sorted(p.name for p in (tmp_path / "resumed.work" / "checkpoints").iterdir()) == ["checkpoint-19", "checkpoint-38"]
    capsys.readouterr()
    run_distil(toy_world, tmp_path / "resumed", *argv)
    assert "resuming from" in capsys.readouterr().out
    texts = [e.text for e in toy_examples(4, seed=11)]
    assert np.allclose(load(tmp_path / "straight").predict(texts), load(tmp_path / "resumed").predict(texts), atol=1e-5)
    with pytest.raises(UserError, match="other settings .*epochs"):
        run_distil(toy_world, tmp_path / "resumed", *argv[:-1], "4", "--force")


KILLED_AT_EPOCH = """
import os, signal, sys
from transformers import TrainerCallback
from rasa_kd.students import distil

class Kill(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.epoch >= int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

distil.distil(distil.parse(sys.argv[2:]), callbacks=[Kill()])
"""


def test_sigkill_keeps_the_previous_package_and_the_rerun_resumes(toy_world, tmp_path, capsys):
    from rasa_kd.students import load

    argv = [*TINY_BILSTM, "--vocab", "words", "--vectors", str(toy_world["vectors"]), "--learning-rate", "0.01",
            "--epochs", "3", "--seed", "7"]
    out = tmp_path / "student"
    run_distil(toy_world, out, *argv[:-1], "8")  # the package a server reads meanwhile
    previous = {p.name: p.read_bytes() for p in out.iterdir()}
    run_distil(toy_world, tmp_path / "straight", *argv)
    replacing = [str(a) for a in distil_argv(toy_world, out, *argv, "--force", "--work", tmp_path / "work")]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_EPOCH, "2", *replacing], capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous
    capsys.readouterr()
    run_distil(toy_world, out, *argv, "--force", "--work", tmp_path / "work")
    assert "resuming from" in capsys.readouterr().out
    assert not list(tmp_path.glob(".student.*"))  # the killed run's temporary folder is gone
    texts = [e.text for e in toy_examples(4, seed=11)]
    assert np.allclose(load(tmp_path / "straight").predict(texts), load(out).predict(texts), atol=1e-5)


def test_transfer_labels_must_match_logits_width(toy_world, tmp_path):
    bad = write_transfer(tmp_path / "bad", toy_world["teacher"], n_per_intent=2, n_augmented=2,
                         labels=LABELS + ["extra"])
    with pytest.raises(UserError, match="names 5 labels but the logits have 4 columns"):
        run_distil({**toy_world, "transfer": bad}, tmp_path / "out", *TINY_BILSTM)
    assert not (tmp_path / "out").exists()


def test_dev_intents_must_be_student_labels(toy_world, tmp_path):
    from rasa_kd.formats.nlu_yaml import Example

    dev = write_nlu(tmp_path / "dev.yml", toy_examples(2, seed=1) + [Example("sing a song", "music")])
    with pytest.raises(UserError, match="intents the student does not know .*music"):
        run_distil({**toy_world, "dev": dev}, tmp_path / "out", *TINY_BILSTM)


def test_teacher_labels_must_match_transfer_labels(toy_world, tmp_path):
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(toy_world["teacher"], teacher)
    (teacher / "labels.json").write_text(json.dumps(list(reversed(LABELS))))
    with pytest.raises(UserError, match="does not match .*labels.json"):
        run_distil(toy_world, tmp_path / "out", *TINY_BILSTM, "--teacher", teacher)


def test_missing_transfer_and_bad_options(toy_world, tmp_path):
    with pytest.raises(UserError, match="transfer set folder not found"):
        run_distil({**toy_world, "transfer": tmp_path / "none"}, tmp_path / "out")
    with pytest.raises(UserError, match="no labels.json"):
        run_distil({**toy_world, "transfer": tmp_path}, tmp_path / "out")
    with pytest.raises(UserError, match="--hard-weight"):
        run_distil(toy_world, tmp_path / "out", "--hard-weight", "1.5")
    with pytest.raises(UserError, match="--tag-hard-weight"):
        run_distil(toy_world, tmp_path / "out", "--tag-hard-weight", "-0.1")
    with pytest.raises(UserError, match="--transfer-limit must be positive"):
        run_distil(toy_world, tmp_path / "out", "--transfer-limit", "0")


def test_transfer_limit_keeps_the_originals_first(toy_world, tmp_path):
    manifest = run_distil(toy_world, tmp_path / "student", *TINY_BILSTM, "--epochs", "1", "--transfer-limit", "200")
    recipe = manifest["recipe"]
    assert recipe["transfer_limit"] == 200 and recipe["transfer_sentences"] == 200 - recipe["held_out"]
    assert recipe["transfer_sources"] == {"original": 160, "rules": 36}  # 4 held out to score epochs on


@pytest.mark.parametrize("repeat, originals", [(0, 0), (3, 480)])
def test_originals_repeat_weighs_the_training_sentences(toy_world, tmp_path, repeat, originals):
    manifest = run_distil(toy_world, tmp_path / "student", *TINY_BILSTM, "--epochs", "1", "--transfer-limit", "200",
                          "--originals-repeat", str(repeat))
    recipe = manifest["recipe"]
    assert recipe["originals_repeat"] == repeat
    assert recipe["transfer_sources"] == {"rules": 36, **({"original": originals} if originals else {})}
    from rasa_kd.formats import student_package

    assert len(student_package.read_training_hashes(tmp_path / "student")) == 160  # left out: still the teacher's


def test_selection_dev_or_last_holds_nothing_out_and_last_keeps_the_last_epoch(toy_world, tmp_path):
    on_dev = run_distil(toy_world, tmp_path / "dev", *TINY_BILSTM, "--epochs", "2", "--selection", "dev")["recipe"]
    assert on_dev["selection"] == "dev" and on_dev["held_out"] == 0 and on_dev["transfer_sentences"] == 320
    # a learning rate of 0: no epoch is better than the first, so patience 1 would stop after the second
    last = run_distil(toy_world, tmp_path / "last", *TINY_BILSTM, "--epochs", "3", "--selection", "last",
                      "--patience", "1", "--learning-rate", "0")["recipe"]
    assert last["selection"] == "last" and last["best_epoch"] == 3 and len(last["dev_history"]) == 3


def test_cli_help_and_one_line_errors(toy_world, tmp_path):
    code = "import sys; from rasa_kd import cli; sys.exit(cli.main(sys.argv[1:]))"
    help_text = subprocess.run([sys.executable, "-c", code, "distil", "--help"], capture_output=True, text=True).stdout
    for words in ("--transfer", "--student", "--loss", "--temperature", "--hard-weight", "--embedding-mode",
                  "student.json", "default"):
        assert words in help_text
    bad = subprocess.run([sys.executable, "-c", code, "distil", *map(str, distil_argv(
        {**toy_world, "transfer": tmp_path / "none"}, tmp_path / "out"))], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "transfer set folder not found" in bad.stderr
