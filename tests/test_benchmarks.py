"""`benchmarks/run.py` and `benchmarks/report.py` end to end on a toy task with tiny models,
so that the benchmark code cannot rot (the real runs take minutes to hours)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, toy_nlu, tiny_bert_dir, toy_vectors):
    work = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--task", "custom", "--data", str(toy_nlu["train"].parent),
            "--budget", "smoke", "--teacher-model", str(tiny_bert_dir), "--vectors", str(toy_vectors),
            "--work", str(work / "work"), "--results", str(work / "results")]
    first = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    return work, json.loads((work / "results" / "custom.json").read_text())["smoke"], again.stdout


def test_run_scores_every_system_on_the_same_test_set(smoke_run):
    _, result, _ = smoke_run
    systems = result["systems"]
    assert set(systems) == {"teacher", "bilstm", "bert", "diet", "student_in_rasa"}
    for name, system in systems.items():
        scores = system["scores"]["test"]
        assert 0 <= scores["accuracy"] <= 1 and -1 <= scores["mcc"] <= 1, name
        assert system["latency_ms_batch1"] > 0 and system["size_bytes"] > 0, name
    n = {name: system["scores"]["test"]["n"] for name, system in systems.items()}
    assert len(set(n.values())) == 1, n  # Rasa's test set and ours are the same 32 examples
    assert systems["bilstm"]["runtime"].startswith("student-onnx") and systems["bilstm"]["dev_history"]
    assert systems["student_in_rasa"]["rasa_report"]["test"]["n"] == n["teacher"]
    assert result["data"]["used"]["train"] == 96 and result["recipe"]["bilstm"]["vocab"] == "words"
    assert {t["name"].split(" ")[0] for t in result["targets"]} >= {"best", "student-in-Rasa"}
    assert result["versions"]["rasa"].startswith("3.6") and result["machine"]["cores"] >= 1


def test_rerun_skips_every_stage(smoke_run):
    _, _, rerun_output = smoke_run
    ran = [line for line in rerun_output.splitlines() if line.startswith("== ") and "skipped" not in line]
    assert ran == [], ran


def test_report_writes_tables_and_plots(smoke_run, tmp_path):
    work, _, _ = smoke_run
    out = tmp_path / "RESULTS.md"
    status = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--results", str(work / "results"),
                             "--out", str(out), "--plots", str(tmp_path / "plots")], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr[-3000:]
    text = out.read_text()
    assert "## custom" in text and "| teacher |" in text and "DIET" in text
    for png in ("accuracy_vs_latency.png", "student_dev_curves.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_unknown_task_is_one_line(tmp_path):
    status = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--task", "imdb"],
                            capture_output=True, text=True)
    assert status.returncode == 2 and "invalid choice" in status.stderr and "Traceback" not in status.stderr


def test_transfer_curve_front_and_table():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import transfer_curve

    def point(new, dev, minutes):
        return {"new_sentences": new, "options": {}, "dev": {"accuracy": dev}, "test": {"accuracy": dev - 0.01},
                "x_teacher": 0.97, "epochs_run": 4, "best_epoch": 2.0, "train_minutes": minutes,
                "compute_minutes": minutes}

    points = {"0": point(0, 0.70, 0.5), "10k": point(10_000, 0.84, 2.0), "20k": point(20_000, 0.83, 3.0),
              "50k": point(50_000, 0.86, 6.0)}
    assert transfer_curve.pareto(points) == ["0", "10k", "50k"]  # 20k: more compute, worse than 10k on dev
    result = {"data": {"train": 2706, "dev": 931, "test": 948}, "points": points,
              "teacher": {"test": {"accuracy": 0.867}, "dev": {"accuracy": 0.86}},
              "transfer": {"rows": 202_706, "seconds": 400.0, "sentences_per_s": 506.8}}
    table = transfer_curve.markdown({"machine": {"cores": 2, "cpu": "cpu"}, "tasks": {"sara": result}})
    assert "| **10k** | 10,000 | preset | 0.8400 |" in table and "| 20k | 20,000 |" in table
