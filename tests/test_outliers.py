"""Outlier exposure: `rasa-kd augment --outliers` adds generic sentences, `rasa-kd label` gives the
ones far from the training sentences flat targets (rasa_kd/transfer/outliers.py)."""
import json

import datasets
import numpy as np
import pytest

from conftest import LABEL_SETTINGS, argv_of, run_cli, toy_augment_options
from rasa_kd.formats import transfer_set
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.teachers.folder import TeacherFolder
from rasa_kd.transfer import augment, label, outliers

GENERIC = ["what is the capital of mongolia", "do you sell bicycles", "how tall is the eiffel tower",
           "my washing machine is leaking", "who won the football match yesterday", "how do i bake sourdough bread",
           "what time does the pharmacy open", "can you recommend a good novel", "how much is a flight to rome",
           "why is the sky blue"]


@pytest.fixture
def generic_file(tmp_path):
    path = tmp_path / "generic.txt"
    path.write_text("\n".join(GENERIC + ["", "  "]) + "\n")
    return path


def test_near_originals_marks_what_lies_among_the_training_sentences():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 10
    originals = np.concatenate([c + rng.normal(scale=0.5, size=(40, 8)) for c in centres])
    near_ones = centres[[0, 2]] + rng.normal(scale=0.5, size=(2, 8))
    far_ones = np.zeros((3, 8))
    far_ones[:, 3:] = rng.normal(scale=10, size=(3, 5))
    near, cut = outliers.near_originals(originals, np.concatenate([near_ones, far_ones]))
    assert near.tolist() == [True, True, False, False, False] and 0 < cut < 1


def test_flat_rows_give_a_uniform_distribution_at_the_same_level():
    logits = np.array([[4.0, -1.0, 0.0], [1.0, 1.0, 7.0]], dtype=np.float32)
    flat = outliers.flattened(logits)
    assert flat.dtype == logits.dtype and np.allclose(flat, [[1.0] * 3, [3.0] * 3])


def test_augment_adds_outlier_rows_from_a_file_new_and_counted(toy_nlu, toy_vectors, generic_file, tmp_path):
    meta = augment.augment(toy_augment_options(toy_nlu, toy_vectors, tmp_path / "t", outliers=str(generic_file),
                                               outlier_size=6))
    data = datasets.load_from_disk(str(tmp_path / "t"))
    rows = data.filter(lambda row: row["source"] == transfer_set.OUTLIER)
    assert len(rows) == 6 and set(rows["text"]) <= set(GENERIC)
    assert set(rows["parent"]) == {-1} and set(rows["intent"]) == {""} and set(rows["entities"]) == {None}
    assert meta["counts"] == {"original": len(read_examples(toy_nlu["train"])), "rules": 400, "outlier": 6}
    none = augment.augment(toy_augment_options(toy_nlu, toy_vectors, tmp_path / "n", outliers="none"))
    assert "outlier" not in none["counts"]


def test_auto_takes_the_packaged_corpus_for_english_data_only(toy_nlu):
    assert outliers.CORPUS.is_file() and len(outliers.CORPUS.read_text().splitlines()) >= 1000
    assert outliers.corpus_file("auto", english=True) == outliers.CORPUS
    assert outliers.corpus_file("auto", english=False) is None and outliers.corpus_file("none", True) is None


def test_a_missing_outlier_file_is_one_line_and_no_output(toy_nlu, toy_vectors, tmp_path, capsys):
    options = toy_augment_options(toy_nlu, toy_vectors, tmp_path / "t", outliers=str(tmp_path / "nope.txt"))
    status, err = run_cli(["augment", *map(str, argv_of(options))], capsys)
    assert status == 2 and len(err) == 1 and "nope.txt" in err[0] and not (tmp_path / "t").exists()


def test_label_flattens_the_far_outliers_and_keeps_the_teachers_logits_elsewhere(toy_nlu, toy_vectors, generic_file,
                                                                               tiny_teacher_dir, tmp_path):
    augment.augment(toy_augment_options(toy_nlu, toy_vectors, tmp_path / "t", outliers=str(generic_file)))
    meta = label.label(label.LabelOptions(teacher=[tiny_teacher_dir], transfer=tmp_path / "t", out=tmp_path / "l",
                                          **LABEL_SETTINGS))
    data = datasets.load_from_disk(str(tmp_path / "l"))
    assert transfer_set.VECTORS not in data.column_names  # captured for the filter, not written without --vectors
    logits = np.asarray(data["logits"], dtype=np.float32)
    teacher = TeacherFolder(tiny_teacher_dir).predict_logits(data["text"], batch_size=7)
    is_outlier = np.array(data["source"]) == transfer_set.OUTLIER
    flat = np.ptp(logits, axis=1) == 0
    assert meta["outliers"]["rows"] == int(is_outlier.sum()) == len(GENERIC)
    assert meta["outliers"]["flat"] == int(flat.sum()) > 0 and not (flat & ~is_outlier).any()
    np.testing.assert_allclose(logits[~flat], teacher[~flat], atol=1e-4)
    np.testing.assert_allclose(logits[flat].mean(axis=1), teacher[flat].mean(axis=1), atol=1e-4)
    assert json.loads((tmp_path / "l" / "label.json").read_text())["outliers"] == meta["outliers"]


def test_the_students_held_out_selection_share_never_takes_an_outlier_sentence():
    from rasa_kd.students.data import hold_out

    sources = ["original"] * 4 + ["rules"] * 8 + [transfer_set.OUTLIER] * 8
    rows = {"text": [f"sentence {i}" for i in range(len(sources))], "source": sources,
            "logits": [[1.0, 0.0]] * len(sources)}
    opened = transfer_set.TransferSet(None, datasets.Dataset.from_dict(rows), ["a", "b"], {}, {})
    held = hold_out(opened, share=1.0, most=100, seed=0)
    assert {e.text for e in held} == {f"sentence {i}" for i in range(4, 12)}
    assert transfer_set.sources_of(opened.dataset).count(transfer_set.OUTLIER) == 8
