"""Small assistants: 300 training sentences, as a new assistant has. The defaults of `rasa-kd
pipeline` (teacher chosen by the data, balanced student) against Rasa's default DIET pipeline,
on our sets subsampled (the samples of benchmarks/teacher_choice.py: a stratified 300 of the
training pool per seed), scored on each set's full test split (a test intent absent from a
sample counts as an error for every system).

    .venv/bin/python benchmarks/small_assistants.py                        # 5 tasks x 3 seeds, ~2.5 h
    .venv/bin/python benchmarks/small_assistants.py --tasks mtod-th --seeds 0

Per task and seed (cached in benchmarks/work/small/<task>-<seed>, so a re-run resumes):
  pipeline  `rasa-kd pipeline --nlu sample --test test --allow-unknown-labels` (defaults)
  diet      `rasa train nlu` / `rasa test nlu` with Rasa's default pipeline (rasa init's config)
Writes benchmarks/results/small_assistants.{json,md}: per task the mean over seeds of the
teacher's, the student's and DIET's test accuracy, the student's size and the teacher used.
Targets (issue 30): student >= DIET + 0.02 and >= 0.98 x its teacher on every task.
"""
import argparse
import json
import sys
from pathlib import Path
from statistics import mean
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import rasa_runner  # noqa: E402
from run import publish, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import CHOICE_FILE, PipelineOptions, Stages, run_pipeline  # noqa: E402
from teacher_choice import SEEDS, TASKS, TaskRun  # noqa: E402

SIZE = "300"


def pipeline_run(task: TaskRun, seed: int, work: Path) -> Dict:
    train, test = task.sample(SIZE, seed), task.pool() / "test.yml"
    out = work / "pipeline"
    result = run_pipeline(PipelineOptions(nlu=train, test=test, out=out, allow_unknown_labels=True, quiet=True))
    teacher, student = result["metrics"]["teacher"], result["metrics"]["student"]
    choice = json.loads((out / CHOICE_FILE).read_text())
    return {"teacher": teacher["scores"]["accuracy"], "student": student["scores"]["accuracy"],
            "student_mb": round(student["size_bytes"] / 1e6, 2), "runtime": student.get("kind"),
            "teachers": choice["teachers"], "why": choice["reason"],
            "minutes": round(sum(result["timings"].values()) / 60, 1)}


def diet_run(task: TaskRun, seed: int, work: Path) -> Dict:
    train, test = task.sample(SIZE, seed), task.pool() / "test.yml"
    folder = work / "diet"
    stages = Stages(work)
    config = folder / "config.yml"

    def train_and_test():
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(rasa_runner.DIET_CONFIG)
        model = rasa_runner.train_nlu(config, train, folder, "diet")
        scores = rasa_runner.test_nlu(model, test, folder / "test")
        (folder / "scores.json").write_text(json.dumps(scores, indent=1))

    stages.run("diet", {"config": rasa_runner.DIET_CONFIG}, [train, test], folder / "scores.json", train_and_test)
    return {"diet": json.loads((folder / "scores.json").read_text())["accuracy"]}


def summary(tasks: Dict) -> List[str]:
    lines = ["| task | teacher(s) | teacher | student | DIET | student - DIET | student x teacher | size MB | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, seeds in tasks.items():
        runs = [r for r in seeds.values() if "student" in r and "diet" in r]
        if not runs:
            continue
        teacher, student, diet = (mean(r[k] for r in runs) for k in ("teacher", "student", "diet"))
        used = sorted({" + ".join(r["teachers"]) for r in runs})
        lines.append(f"| {name} | {', '.join(used)} | {teacher:.4f} | {student:.4f} | {diet:.4f} | "
                     f"{student - diet:+.4f} | {student / teacher:.3f} | "
                     f"{mean(r['student_mb'] for r in runs):.1f} | {len(runs)} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=tuple(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = parser.parse_args(argv)
    quiet_environment()
    result = results_so_far("small_assistants", "benchmarks/small_assistants.py")
    tasks = result["tasks"]
    for name in args.tasks:
        task = TaskRun(name, args.work / "choice")
        for seed in args.seeds:
            work = args.work / "small" / f"{name}-{seed}"
            entry = {**pipeline_run(task, seed, work), **diet_run(task, seed, work)}
            tasks.setdefault(name, {})[str(seed)] = entry
            print(f"{name} seed {seed}: teacher {entry['teacher']:.4f} student {entry['student']:.4f} "
                  f"DIET {entry['diet']:.4f} ({' + '.join(entry['teachers'])})", flush=True)
            publish("small_assistants", result, "\n".join(
                ["# Small assistants: 300 training sentences", "",
                 "Mean test accuracy over seeds; `rasa-kd pipeline` defaults against Rasa's default DIET "
                 "pipeline on the same samples (benchmarks/small_assistants.py).", "", *summary(tasks)]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
