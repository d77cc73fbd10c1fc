"""Calibration of the default student and its teacher: ECE before and after temperature scaling.

    .venv/bin/python benchmarks/calibration.py                  # sara trec mtod-es rasa-demo
    .venv/bin/python benchmarks/calibration.py --tasks sara trec

Reads the teachers and balanced students that `benchmarks/small_students.py` left in
benchmarks/work/small/<task> (run it first). Per task: the teacher's test ECE (T = 1);
the student's test ECE with T = 1 and with the temperature `rasa-kd calibrate` fits on
the dev split (the same fit `rasa-kd distil` makes at the end of every distillation),
run with the deployed runtime; and the FallbackClassifier threshold chosen on dev for
precision 0.95 with what it keeps on test. The students are copied first, so the
small_students packages stay as they are.

Writes benchmarks/results/calibration.json and .md, and reliability diagrams (PNG)
into benchmarks/results/calibration/.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine, results_json, versions  # noqa: E402

TASKS = ("sara", "trec", "mtod-es", "rasa-demo")
PRECISION = 0.95


def scored(model: Path, data: Path, out: Path) -> Dict:
    from rasa_kd.evaluation import evaluate

    metrics = evaluate.evaluate(model, data, out, speed=False, memory=False, precision=PRECISION)
    return {"accuracy": metrics["scores"]["accuracy"], **metrics["calibration"]}


def kept_at(threshold, model: Path, data: Path) -> Dict:
    """Share of `data` kept by `threshold` and the precision of what is kept."""
    from rasa_kd.evaluation import calibration
    from rasa_kd.evaluation.evaluate import open_model
    from rasa_kd.formats.nlu_yaml import read_examples

    examples = read_examples(data)
    student = open_model(model)  # the deployed runtime, run as evaluate runs it
    probabilities = student.predict([e.text for e in examples])
    index = {label: i for i, label in enumerate(student.labels)}
    gold = [index.get(e.intent, -1) for e in examples]
    return {"threshold": threshold, **calibration.kept_at(probabilities, gold, threshold)}


def task_result(task: str, small: Path, out: Path) -> Dict:
    from rasa_kd.evaluation.calibration import calibrate_package
    from rasa_kd.formats import student_package

    work, data = small / task, small / task / "data"
    if not (work / "student-balanced" / "student.json").exists():
        raise SystemExit(f"{work}/student-balanced: not found (run benchmarks/small_students.py first)")
    student = ROOT / "benchmarks" / "work" / "calibration" / task / "student"
    shutil.rmtree(student, ignore_errors=True)
    shutil.copytree(work / "student-balanced", student)
    student_package.update_manifest(student, calibration={"temperature": 1.0})
    pictures = out / "calibration"
    result = {"teacher": scored(work / "teacher", data / "test.yml", pictures / f"{task}-teacher.json"),
              "student_uncalibrated": scored(student, data / "test.yml", pictures / f"{task}-student-t1.json")}
    result["fit"] = calibrate_package(student, data / "dev.yml")
    result["student"] = scored(student, data / "test.yml", pictures / f"{task}-student.json")
    dev = scored(student, data / "dev.yml", pictures / f"{task}-student-dev.json")
    result["fallback_on_test"] = {"chosen_on_dev": dev["fallback"],
                                  "test": kept_at(dev["fallback"]["threshold"], student, data / "test.yml")}
    for metrics_file in pictures.glob(f"{task}-*.json"):
        metrics_file.unlink()  # the numbers live in calibration.json; only the diagrams stay
    return result


def markdown(results: Dict) -> str:
    lines = ["# Calibration: the default student against its teacher", "",
             f"Produced by `benchmarks/calibration.py` ({results['machine']['cores']} cores). Test ECE (15 bins) of "
             "the teacher (T = 1) and of the balanced student (deployed runtime) before and after temperature "
             "scaling fitted on dev; the FallbackClassifier threshold chosen on dev for precision "
             f"{PRECISION} and what it keeps on test. Diagrams: `benchmarks/results/calibration/`.", "",
             "| task | teacher ECE | student ECE, T = 1 | temperature | student ECE | student accuracy | "
             "threshold (dev) | kept on test | precision on test |", "|---|---|---|---|---|---|---|---|---|"]
    for task, r in results["tasks"].items():
        test = r["fallback_on_test"]["test"]
        threshold = "none" if test["threshold"] is None else f"{test['threshold']:.3f}"
        precision = "" if test["precision"] is None else f"{test['precision']:.3f}"
        lines.append(f"| {task} | {r['teacher']['ece']:.4f} | {r['student_uncalibrated']['ece']:.4f} | "
                     f"{r['fit']['temperature']:.3f} | **{r['student']['ece']:.4f}** | {r['student']['accuracy']:.4f} | "
                     f"{threshold} | {test['kept']:.1%} | {precision} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--small", type=Path, default=ROOT / "benchmarks" / "work" / "small")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from rasa_kd.cli import quiet_environment

    quiet_environment()
    path = args.results / "calibration.json"
    results = json.loads(path.read_text()) if path.exists() else {"tasks": {}}
    results.update(benchmark="benchmarks/calibration.py", machine=machine(), versions=versions(),
                   created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    for task in args.tasks:
        results["tasks"][task] = task_result(task, args.small, args.results)
        path.write_text(results_json(results))
    (args.results / "calibration.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
