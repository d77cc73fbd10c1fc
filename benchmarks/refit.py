"""The teacher refit (issue 32, the user path): `rasa-kd pipeline` and `rasa train` hold a dev share
of the assistant's own training file out of everything, the teacher included. With the refit the
teacher is fine-tuned once more on training and dev sentences together, for the epochs the dev
share picked. This runs the pipeline on a benchmark's training split alone, as a user runs it,
with and without the refit, and scores both teachers and both deployed students on the
benchmark's own dev split (the judge, never seen by either run) and test split.

    .venv/bin/python benchmarks/refit.py                                  # every task below
    .venv/bin/python benchmarks/refit.py --tasks sara-300-0 trec-300-0

Tasks: sara, trec, trec50, mtod-es, rasa-demo (benchmarks/small_students.py's splits: the training
split is the user's file) and <task>-300-<seed> (benchmarks/small_assistants.py's 300-sentence
samples of sara, trec, mtod-en, judged on the pool's dev and test). Builds in
benchmarks/work/refit/<task>/{no-refit,refit} (resumable stages; LM samples come from the cache
when the small-assistant builds made them). Writes benchmarks/results/refit.json and .md.
"""
import argparse
import json
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402

SYSTEMS = {"no-refit": "never", "refit": "always"}  # --teacher-refit
SMALL_TASKS = ("sara", "trec", "mtod-en")


def task_files(task: str, work: Path) -> Tuple[Path, Path, Path]:
    """(the user's training file, the judge's dev file, the test file)."""
    if "-300-" in task:
        from teacher_choice import TaskRun as PoolRun

        name, _, seed = task.rpartition("-300-")
        pool_run = PoolRun(name, work / "choice")
        pool = pool_run.pool()
        return pool_run.sample("300", int(seed)), pool / "dev.yml", pool / "test.yml"
    from small_students import TaskRun

    build = TaskRun(task, work / "small", [], 0)
    build.convert()
    build.prepare()
    return build.file("train"), build.file("dev"), build.file("test")


def accuracy(model: Path, nlu: Path) -> float:
    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.students import load
    from rasa_kd.transfer.label import load_teachers

    examples = read_examples(nlu)
    texts = [e.text for e in examples]
    if (model / "student.json").exists():
        predicted = load(model, runtime="auto").predict_labels(texts)
    else:
        teacher = load_teachers([model])[0]
        predicted = [teacher.labels[i] for i in teacher.predict_logits(texts).argmax(axis=1)]
    return sum(p == e.intent for p, e in zip(predicted, examples)) / len(examples)


def system_run(task: str, refit: str, work: Path) -> Dict:
    from rasa_kd.pipeline import PipelineOptions, run_pipeline

    train, dev, test = task_files(task, work)
    out = work / "refit" / task / ("refit" if refit == "always" else "no-refit")
    started = time.time()
    result = run_pipeline(PipelineOptions(nlu=train, test=test, out=out, teacher_refit=refit,
                                          allow_unknown_labels=True, quiet=True))
    teacher_metrics = json.loads((out / "teacher" / "metrics.json").read_text())
    return {"teacher": {"dev": accuracy(out / "teacher", dev), "test": accuracy(out / "teacher", test)},
            "student": {"dev": accuracy(out / "student", dev), "test": accuracy(out / "student", test),
                        "runtime": json.loads((out / "student" / "student.json").read_text()).get("runtime")},
            "train_examples": teacher_metrics["train_examples"], "dev_examples": teacher_metrics["dev_examples"],
            "best_epoch": teacher_metrics["best_epoch"], "refit": teacher_metrics.get("refit"),
            "teacher_minutes": round(sum(v for k, v in result["timings"].items() if k.startswith("teacher")) / 60, 1),
            "minutes": round((time.time() - started) / 60, 1)}


def markdown(results: Dict) -> str:
    lines = ["# The teacher refit on training and dev sentences (the user path)", "",
             f"Produced by `benchmarks/refit.py` on this machine ({results['machine']['cores']} cores, "
             f"{results['machine']['cpu']}). `rasa-kd pipeline` on a benchmark's training split alone (a dev share "
             "split off it, as `rasa train` does), with `--teacher-refit never` and `always` (the teacher "
             "fine-tuned once more on training + dev sentences for the epochs the dev share picked). Judge: the "
             "benchmark's own dev split, which neither run saw; test is reported only. Students deployed (runtime "
             "auto). Minutes: the whole pipeline run on 2 cores, stages reused from an earlier run excluded.", "",
             "| task | train + dev share | system | teacher dev | teacher test | student dev | student test | "
             "student x teacher | teacher min | run min |", "|---|---|---|---|---|---|---|---|---|---|"]
    for task, systems in results["tasks"].items():
        for name, entry in systems.items():
            teacher, student = entry["teacher"], entry["student"]
            lines.append(f"| {task} | {entry['train_examples']:,} + {entry['dev_examples']:,} | {name} | "
                         f"{teacher['dev']:.4f} | {teacher['test']:.4f} | {student['dev']:.4f} | "
                         f"{student['test']:.4f} | {student['test'] / teacher['test']:.3f} | "
                         f"{entry['teacher_minutes']:.1f} | {entry['minutes']:.1f} |")
    return "\n".join(lines + ["", "Mean over the tasks both systems ran on (dev decides):", "", *means(results)]) + "\n"


def means(results: Dict) -> List[str]:
    both = {task: systems for task, systems in results["tasks"].items() if set(SYSTEMS) <= set(systems)}
    lines = ["| system | tasks | teacher dev | student dev | student test |", "|---|---|---|---|---|"]
    for name in SYSTEMS:
        entries = [systems[name] for systems in both.values()]
        if entries:
            lines.append(f"| {name} | {len(entries)} | {mean(e['teacher']['dev'] for e in entries):.4f} | "
                         f"{mean(e['student']['dev'] for e in entries):.4f} | "
                         f"{mean(e['student']['test'] for e in entries):.4f} |")
    return lines


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["sara-300-0", "trec-300-0", "sara", "trec"])
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = parser.parse_args(argv)
    results = results_so_far("refit", "benchmarks/refit.py")
    for task in args.tasks:
        for name in args.systems:
            entry = system_run(task, SYSTEMS[name], args.work)
            results["tasks"].setdefault(task, {})[name] = entry
            print(f"{task} {name}: teacher dev {entry['teacher']['dev']:.4f}, student dev "
                  f"{entry['student']['dev']:.4f} test {entry['student']['test']:.4f}", flush=True)
            publish("refit", results, markdown(results))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
