"""`rasa-kd label`: logits column, determinism, resuming after a kill, ensembles, bad input."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from conftest import LABEL_SETTINGS, argv_of, run_cli, run_stage, stage_parser
from rasa_kd.formats import transfer_set
from rasa_kd.options import from_namespace
from rasa_kd.teachers.folder import TeacherFolder
from rasa_kd.transfer import label
from rasa_kd.transfer.label import LabelOptions

TESTS = Path(__file__).resolve().parent


def logits_of(folder) -> np.ndarray:
    return np.asarray(datasets.load_from_disk(str(folder))["logits"], dtype=np.float32)


def label_options(teachers, source, out, **changes) -> LabelOptions:
    return LabelOptions(teacher=list(teachers), transfer=source, out=out, **{**LABEL_SETTINGS, **changes})


def test_labelled_set_keeps_columns_and_matches_the_teacher(toy_transfer_labelled, toy_transfer, tiny_teacher_dir):
    labelled = transfer_set.open_transfer(toy_transfer_labelled, labelled=True, require=transfer_set.COLUMNS).dataset
    source = datasets.load_from_disk(str(toy_transfer))
    assert labelled.select_columns(source.column_names).to_dict() == source.to_dict()
    assert labelled.features == transfer_set.features(with_logits=True)
    labels = json.loads((toy_transfer_labelled / "labels.json").read_text())
    assert labels == json.loads((tiny_teacher_dir / "labels.json").read_text())
    expected = TeacherFolder(tiny_teacher_dir).predict_logits(source["text"], batch_size=7)
    np.testing.assert_allclose(logits_of(toy_transfer_labelled), expected, atol=1e-4)
    meta = json.loads((toy_transfer_labelled / "label.json").read_text())
    assert meta["teachers"] == [str(tiny_teacher_dir.resolve())] and meta["rows"] == len(source)
    assert meta["sentences_per_s"] > 0 and meta["agreement_with_gold"] > 0.5
    assert json.loads((toy_transfer_labelled / "transfer.json").read_text())["format"] == "rasa-kd-transfer"
    assert not label.shards_dir(toy_transfer_labelled).exists()


def test_labelling_twice_gives_identical_logits(toy_transfer_labelled, toy_transfer, tiny_teacher_dir, tmp_path):
    label.label(label_options([tiny_teacher_dir], toy_transfer, tmp_path / "again"))
    np.testing.assert_array_equal(logits_of(tmp_path / "again"), logits_of(toy_transfer_labelled))


def test_killed_run_resumes_without_losing_or_repeating_rows(toy_transfer_labelled, toy_transfer,
                                                           tiny_teacher_dir, tmp_path):
    out = tmp_path / "resumed"
    argv = argv_of(label_options([tiny_teacher_dir], toy_transfer, out, shard_size=64))
    killed = subprocess.run([sys.executable, str(TESTS / "killed_label.py"), "3", "label", *map(str, argv)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == 75, killed.stderr[-2000:]
    assert not out.exists()
    shards = sorted(p.name for p in label.shards_dir(out).glob("shard-*.npz"))
    assert shards == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert run_stage("rasa_kd.transfer.label", argv) == 0
    meta = json.loads((out / "label.json").read_text())
    rows = len(datasets.load_from_disk(str(toy_transfer)))
    assert meta["rows_resumed"] == 3 * 64 and meta["rows_labelled_this_run"] == rows - 3 * 64
    resumed = datasets.load_from_disk(str(out))
    assert resumed["text"] == datasets.load_from_disk(str(toy_transfer))["text"]
    np.testing.assert_array_equal(logits_of(out), logits_of(toy_transfer_labelled))
    assert not label.shards_dir(out).exists()


def changed_teacher(tiny_teacher_dir, folder: Path, shift: float) -> Path:
    """A copy of the teacher with a shifted classifier bias (same labels)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    shutil.copytree(tiny_teacher_dir, folder)
    model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    with torch.no_grad():
        model.classifier.bias.add_(shift * torch.arange(model.config.num_labels, dtype=torch.float32))
    model.save_pretrained(folder)
    return folder


def test_ensemble_averages_logits(toy_transfer_labelled, toy_transfer, tiny_teacher_dir, tmp_path):
    other = changed_teacher(tiny_teacher_dir, tmp_path / "other", shift=1.0)
    label.label(label_options([tiny_teacher_dir, other], toy_transfer, tmp_path / "ens"))
    expected = logits_of(toy_transfer_labelled) + 0.5 * np.arange(logits_of(toy_transfer_labelled).shape[1])
    np.testing.assert_allclose(logits_of(tmp_path / "ens"), expected, atol=1e-5)
    assert len(json.loads((tmp_path / "ens" / "label.json").read_text())["teachers"]) == 2


def test_vectors_are_what_each_teachers_classifier_reads(toy_transfer_labelled, toy_transfer, tiny_teacher_dir,
                                                        tmp_path):
    from rasa_kd.teachers.folder import sentence_vectors

    other = changed_teacher(tiny_teacher_dir, tmp_path / "other", shift=1.0)
    label.label(label_options([tiny_teacher_dir, other], toy_transfer, tmp_path / "ens", vectors=True, shard_size=64))
    labelled = transfer_set.open_transfer(tmp_path / "ens", labelled=True).dataset
    vectors = np.asarray(labelled[transfer_set.VECTORS], dtype=np.float32)
    teacher = TeacherFolder(tiny_teacher_dir)
    own = sentence_vectors(teacher.classifier, teacher.tokenizer, labelled["text"], teacher.max_length)
    width = teacher.classifier.config.hidden_size
    assert vectors.shape == (len(labelled), 2 * width)
    np.testing.assert_allclose(vectors[:, :width], own, atol=1e-4)
    np.testing.assert_allclose(vectors[:, width:], own, atol=1e-4)  # the bias shift leaves the vectors alone
    expected = logits_of(toy_transfer_labelled) + 0.5 * np.arange(logits_of(toy_transfer_labelled).shape[1])
    np.testing.assert_allclose(logits_of(tmp_path / "ens"), expected, atol=1e-5)
    assert json.loads((tmp_path / "ens" / "label.json").read_text())["vectors"] == 2 * width


@pytest.mark.parametrize("case, fragment", [
    ("labels_differ", "labels.json differs"),
    ("no_text_column", "lacks column(s) text"),
    ("not_a_teacher", "not a teacher folder"),
    ("out_exists", "--force"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(case, fragment, toy_transfer, tiny_teacher_dir, tmp_path, capsys):
    out, source, teachers = tmp_path / "labelled_out", toy_transfer, [tiny_teacher_dir]
    if case == "labels_differ":
        other = tmp_path / "other"
        shutil.copytree(tiny_teacher_dir, other)
        labels = json.loads((other / "labels.json").read_text())
        (other / "labels.json").write_text(json.dumps(labels[::-1]))
        teachers = [tiny_teacher_dir, other]
    elif case == "no_text_column":
        source = tmp_path / "no_text"
        datasets.Dataset.from_dict({"sentence": ["hello there"]}).save_to_disk(str(source))
    elif case == "not_a_teacher":
        teachers = [tmp_path]
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    status, err = run_cli(["label", *argv_of(label_options(teachers, source, out))], capsys)
    assert status == 2 and len(err) == 1 and fragment in err[0], err
    if case == "out_exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists() and not label.shards_dir(out).exists()


def test_option_defaults_are_the_command_line_defaults():
    argv = ["--teacher", "t", "--transfer", "s", "--out", "o"]
    parsed = from_namespace(LabelOptions, stage_parser("rasa_kd.transfer.label").parse_args(argv))
    assert parsed == LabelOptions(teacher=[Path("t")], transfer=Path("s"), out=Path("o"))


def test_token_ids_and_fingerprint_read_in_chunks_equal_the_whole(toy_transfer, tiny_teacher_dir):
    """Read 7 rows at a time (a real set: 16,384), the ids and the fingerprint equal those of
    one pass, so shard folders of earlier runs still resume."""
    import hashlib

    dataset = transfer_set.open_transfer(toy_transfer).dataset
    folder = TeacherFolder(tiny_teacher_dir)
    texts = dataset[transfer_set.TEXT]
    chunked = label.TokenIds(folder, dataset, chunk=7)
    whole = folder.encode(texts)
    assert len(chunked) == len(whole) and all(chunked[i] == whole[i] for i in range(len(whole)))
    assert chunked.lengths.tolist() == [len(ids) for ids in whole]
    assert label.text_fingerprint(dataset, chunk=7) == hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()


def test_sources_are_read_through_a_selection():
    rows = {"text": ["a", "b", "c"], "source": ["original", "rules", "lm"]}
    selected = datasets.Dataset.from_dict(rows).select([2, 0])
    assert transfer_set.sources_of(selected) == ["lm", "original"]
    assert transfer_set.sources_of(datasets.Dataset.from_dict({"text": ["a"]})) == [None]
