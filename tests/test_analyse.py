"""`rasa-kd analyse`: the teacher-vs-student report on the toy task."""
import json

import pytest

from rasa_kd.errors import UserError
from rasa_kd.evaluation import analyse
from rasa_kd.formats import transfer_set
from test_components import distil_student

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def student(tmp_path_factory, toy_transfer_labelled, toy_nlu):
    return distil_student(toy_transfer_labelled, toy_nlu["dev"], tmp_path_factory.mktemp("analyse") / "student", 1)


def test_report_holds_scores_per_intent_f1_disagreements_and_pictures(student, tiny_teacher_dir, toy_nlu,
                                                                     toy_transfer_labelled, tmp_path):
    out = tmp_path / "report"
    report = analyse.analyse(tiny_teacher_dir, student, toy_nlu["test"], out, toy_transfer_labelled)
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "confidence.png", "confusion-student.png",
                                                     "confusion-teacher.png", "report.md"]
    assert all((out / name).read_bytes()[:8] == PNG for name in ("confidence.png", "confusion-student.png"))
    assert json.loads((out / "analysis.json").read_text()) == json.loads(json.dumps(report))
    rows = report["per_intent"]
    assert sum(row["support"] for row in rows) == report["n"]
    losses = [row["student_f1"] - row["teacher_f1"] for row in rows]
    assert losses == sorted(losses)
    disagreeing = report["disagreements"]
    assert all(row["teacher"] != row["student"] for row in disagreeing)
    assert report["agreement"] == pytest.approx(1 - len(disagreeing) / report["n"], abs=1e-4)
    labelled = transfer_set.open_transfer(toy_transfer_labelled).dataset
    assert report["transfer"]["counted_by"] == "teacher's top label"
    assert sum(report["transfer"]["counts"].values()) == len(labelled)
    thinnest = report["transfer"]["thinnest"]
    assert [row["transfer_sentences"] for row in thinnest] == sorted(row["transfer_sentences"] for row in thinnest)
    text = (out / "report.md").read_text()
    assert "## Per-intent F1" in text and "confusion-student.png" in text and "## Thinnest intents" in text


def test_unlabelled_transfer_set_is_counted_by_source_sentence(toy_transfer):
    counted = analyse.transfer_counts(toy_transfer)
    rows = transfer_set.open_transfer(toy_transfer).dataset
    assert counted["counted_by"] == "intent of the source sentence"
    assert sum(counted["counts"].values()) + counted["unassigned"] == len(rows)


def test_existing_report_needs_force_and_models_must_be_the_right_kind(student, tiny_teacher_dir, toy_nlu,
                                                                      tmp_path):
    out = tmp_path / "report"
    analyse.analyse(tiny_teacher_dir, student, toy_nlu["test"], out)
    with pytest.raises(UserError, match="--force"):
        analyse.analyse(tiny_teacher_dir, student, toy_nlu["test"], out)
    analyse.analyse(tiny_teacher_dir, student, toy_nlu["test"], out, force=True)
    with pytest.raises(UserError, match="--teacher takes a teacher folder"):
        analyse.analyse(student, tiny_teacher_dir, toy_nlu["test"], tmp_path / "swapped")
    assert not (tmp_path / "swapped").exists()
