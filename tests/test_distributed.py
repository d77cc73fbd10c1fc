"""Two processes under `torchrun` (gloo on CPU): `label` writes what one process writes, and
`distil` trains data-parallel into a package that loads and predicts."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEL_ARGS = ["--batch-size", "16", "--shard-size", "64", "--quiet"]  # 8 shards of the toy transfer set


def torchrun(argv: List, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "rasa_kd.cli", *map(str, argv)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=cwd)


def logits_of(folder: Path) -> np.ndarray:
    from rasa_kd.formats.transfer_set import open_transfer

    return np.asarray(open_transfer(folder, labelled=True).dataset["logits"], dtype=np.float32)


def test_two_processes_label_what_one_process_labels(tiny_teacher_dir, toy_transfer, tmp_path):
    from rasa_kd.transfer.label import LabelOptions, label, shards_dir

    one, two = tmp_path / "one", tmp_path / "two"
    label(LabelOptions(teacher=[tiny_teacher_dir], transfer=toy_transfer, out=one, batch_size=16, shard_size=64,
                       threads=1, quiet=True))
    result = torchrun(["label", "--teacher", tiny_teacher_dir, "--transfer", toy_transfer, "--out", two,
                       *LABEL_ARGS], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.allclose(logits_of(one), logits_of(two), atol=1e-6)
    meta = json.loads((two / "label.json").read_text())
    assert meta["processes"] == 2 and meta["rows_labelled_this_run"] == meta["rows"]
    assert meta["rows_labelled_by_main_process"] == 4 * 64  # shards 0, 2, 4, 6 of 8
    assert result.stdout.count("label -> ") == 1  # only the main process reports
    assert not shards_dir(two).exists()


def test_two_processes_resume_a_single_process_run(tiny_teacher_dir, toy_transfer, tmp_path):
    """A killed one-process run, resumed by two processes: only the missing shards are labelled."""
    out = tmp_path / "labelled"
    argv = ["label", "--teacher", tiny_teacher_dir, "--transfer", toy_transfer, "--out", out, *LABEL_ARGS]
    killed = subprocess.run([sys.executable, str(ROOT / "tests" / "killed_label.py"), "3", *map(str, argv)],
                            capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert killed.returncode == 75 and not out.exists()
    result = torchrun(argv, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "label.json").read_text())
    assert meta["rows_resumed"] == 3 * 64 and meta["rows_labelled_this_run"] == meta["rows"] - 3 * 64
    sizes = [min(64, meta["rows"] - 64 * k) for k in range(8)]
    assert meta["rows_labelled_by_main_process"] == sizes[3] + sizes[5] + sizes[7]  # missing: shards 3-7


def test_two_processes_distil_a_student_that_loads_and_predicts(toy_transfer_labelled, toy_nlu, tmp_path):
    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.students import load

    out = tmp_path / "student"
    result = torchrun(["distil", "--transfer", toy_transfer_labelled, "--dev", toy_nlu["dev"], "--test",
                       toy_nlu["test"], "--out", out, "--hidden-size", "16", "--fc-size", "16", "--batch-size", "8",
                       "--epochs", "6", "--learning-rate", "1e-2"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("student package:") == 1
    manifest = json.loads((out / "student.json").read_text())
    assert manifest["recipe"]["processes"] == 2
    rows = json.loads((toy_transfer_labelled / "label.json").read_text())["rows"]
    trained_on = rows - manifest["recipe"]["held_out"]  # a small dev set: some held out to score epochs on
    steps_per_epoch = -(-trained_on // (8 * 2))  # each step: a batch of 8 in each of 2 processes
    assert manifest["recipe"]["train_steps"] == steps_per_epoch * len(manifest["recipe"]["dev_history"])
    assert manifest["metrics"]["test"]["accuracy"] >= 0.8  # chance: 0.25
    test = read_examples(toy_nlu["test"])
    predicted = load(out).predict_labels([e.text for e in test])
    assert np.mean([p == e.intent for p, e in zip(predicted, test)]) == manifest["metrics"]["test"]["accuracy"]


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_a_user_error_is_one_line_from_the_first_process_only(monkeypatch, capsys, tmp_path, rank, lines):
    from rasa_kd import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    assert cli.run_command(["split", "--nlu", str(tmp_path / "missing.yml"), "--out", str(tmp_path / "out")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == lines
