"""`benchmarks/run.py` and `benchmarks/report.py` end to end on a toy task with tiny models,
so that the benchmark code cannot rot (the real runs take minutes to hours)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_argv(tmp_path_factory, toy_nlu, tiny_bert_dir, toy_vectors):
    """run.py on the toy task at the smoke budget, without --results."""
    work = tmp_path_factory.mktemp("bench")
    return [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--task", "custom", "--data",
            str(toy_nlu["train"].parent), "--budget", "smoke", "--teacher-model", str(tiny_bert_dir),
            "--vectors", str(toy_vectors), "--work", str(work / "work")]


def run_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run

    return run


def smoke_key(argv) -> str:
    """The results entry of a smoke run: the budget and the teacher it names."""
    return run_module().entry_key("smoke", argv[argv.index("--teacher-model") + 1])


def smoke_entry(argv, results: Path) -> dict:
    # not the repository: whatever Rasa or a stage leaves in its working folder must not land in the checkout
    status = subprocess.run([*argv, "--results", str(results)], capture_output=True, text=True, cwd=results.parent)
    assert status.returncode == 0, status.stderr[-3000:]
    return json.loads((results / "custom.json").read_text())[smoke_key(argv)], status.stdout


@pytest.fixture(scope="module")
def smoke_run(smoke_argv, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    smoke_entry(smoke_argv, results)
    result, again = smoke_entry(smoke_argv, results)
    return results, result, again


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


def test_systems_run_in_two_invocations_add_up_to_one_entry(smoke_argv, smoke_run, tmp_path):
    _, whole, _ = smoke_run
    first, _ = smoke_entry([*smoke_argv, "--systems", "teacher", "bilstm"], tmp_path)
    assert list(first["systems"]) == ["teacher", "bilstm"]
    assert first["not_run"] == ["bert", "diet", "student_in_rasa"] and "carried" not in first
    assert first["targets"][-1]["met"] is None  # the parse-latency target needs DIET
    assert "| teacher |" in report(tmp_path, tmp_path / "partial")  # a partial entry reports what ran
    second, _ = smoke_entry([*smoke_argv, "--systems", "bert", "diet", "student_in_rasa"], tmp_path)
    assert list(second["systems"]) == list(whole["systems"]) and "not_run" not in second
    assert second["carried"]["systems"] == ["teacher", "bilstm"]
    assert second["systems"]["teacher"] == first["systems"]["teacher"]
    assert [t["met"] for t in second["targets"]] == [t["met"] for t in whole["targets"]]


def test_systems_of_other_data_are_not_carried(smoke_argv, smoke_run, tmp_path):
    results, _, _ = smoke_run
    entries = json.loads((results / "custom.json").read_text())
    entries[smoke_key(smoke_argv)]["data_digest"] = "another training set"
    (tmp_path / "custom.json").write_text(json.dumps(entries))
    entry, _ = smoke_entry([*smoke_argv, "--systems", "diet"], tmp_path)
    assert list(entry["systems"]) == ["diet"] and "carried" not in entry


def report(results: Path, out: Path) -> str:
    """benchmarks/report.py on a results folder; the markdown it wrote."""
    out.mkdir()
    status = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--results", str(results),
                             "--out", str(out / "RESULTS.md"), "--plots", str(out / "plots")],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr[-3000:]
    return (out / "RESULTS.md").read_text()


def test_report_writes_tables_and_plots(smoke_run, tmp_path):
    results, _, _ = smoke_run
    text = report(results, tmp_path / "report")
    assert "## custom" in text and "| teacher |" in text and "DIET" in text
    for png in ("accuracy_vs_latency.png", "student_dev_curves.png"):
        assert (tmp_path / "report" / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_a_named_teacher_has_its_own_entry():
    entry_key = run_module().entry_key
    assert entry_key("full", None) == "full" and entry_key("full", "mpnet") == "full-mpnet"  # None: the data's choice
    assert entry_key("smoke", "/tmp/models/tiny bert") == "smoke-tiny-bert"
    assert entry_key("quick", "org/model-v2") == "quick-model-v2"


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


def test_spread_scores_the_epoch_early_stopping_would_keep():
    """spread.py replays `--selection dev` on one run's dev history: the first best epoch (ties do not
    move it), stopped after `patience` epochs without a better one."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import spread

    history = [{"epoch": float(e), "accuracy": a} for e, a in enumerate([0.80, 0.82, 0.82, 0.81, 0.81, 0.85], 1)]
    kept = spread.kept_epochs(history, patience=3)
    assert kept["default"] == [2] and kept["last"] == [6]
    assert kept["avg-last-2"] == [5, 6] and kept["avg-best-2"] == [1, 2] and kept["avg-best-3"] == [1, 2]
    assert spread.kept_epochs(history, patience=0)["default"] == [6]  # never stops: the best of all


def test_refit_means_compare_tasks_both_systems_ran_on():
    run_module()  # puts benchmarks/ on the path
    import refit

    def entry(teacher_dev, student_dev):
        return {"teacher": {"dev": teacher_dev, "test": 0.9}, "student": {"dev": student_dev, "test": 0.8},
                "train_examples": 240, "dev_examples": 58, "teacher_minutes": 1.0, "minutes": 3.0}

    results = {"machine": {"cores": 2, "cpu": "toy"},
               "tasks": {"a": {"no-refit": entry(0.6, 0.5), "refit": entry(0.8, 0.7)},
                         "b": {"no-refit": entry(0.1, 0.1)}}}  # one system only: not in the means
    rows = refit.means(results)
    assert rows[2] == "| no-refit | 1 | 0.6000 | 0.5000 | 0.8000 |"
    assert rows[3] == "| refit | 1 | 0.8000 | 0.7000 | 0.8000 |"
    assert "| b | 240 + 58 | no-refit |" in refit.markdown(results)
