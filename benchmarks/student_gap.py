"""The student-teacher gap on small assistants (issue 32's leads, one at a time), on the builds of
benchmarks/small_assistants.py: the same teacher and labelled transfer set, students distilled with
one recipe change each, scored on the task's selection dev set (the pool's dev split: recipes are
compared there, never on test) and on test (reported).

    .venv/bin/python benchmarks/student_gap.py                       # every lead on every build
                                                                     # (a missing build is made first)
    .venv/bin/python benchmarks/student_gap.py --tasks sara --leads selection-last

Leads (DistilOptions values over the default preset's):
  selection-dev      epochs picked and stopped on the build's 10 % dev split alone (before issue 30:
                     ~30 sentences at 300 training examples)
  selection-teacher  ... on that dev split plus 10 % of the augmented sentences held out of training,
                     labelled with the teacher's intent (the default below 300 dev sentences)
  selection-last     no early stopping: all 8 epochs, the last kept
  epochs-16          selection-teacher with at most 16 epochs instead of 8 (small-data students were
                     still improving at the eighth)
  words-glove        selection-teacher with a word vocabulary on GloVe 6B 50-d vectors instead of the
                     teacher's wordpieces (English sets only: unseen words keep a neighbour's meaning)

The selection leads distil from the build's own transfer set: rules in builds made before
`--augment auto` became the default (seed 0), the LM half in later ones (each entry's `build_method`).

Transfer-set leads (a new transfer set from the build's own training sample, labelled by the build's
teacher, then the default student; the build's augment options otherwise):
  rules              `--method rules` (what the seed-0 builds hold)
  lm-half            `--method rules,lm`: half the sentences from SmolLM2-135M fine-tuned on the
                     training sentences (Tang & Lin 2019; `rasa-kd install smollm2`), sampled freely
  lm-half-conditional  the same with the intent as a prefix, sampled per intent as in training
  lm-2k-conditional  the same with 2,000 LM sentences (the rules make the rest)

Scores are the PyTorch student's accuracy (the int8 check is export's); an intent of dev/test that
the 300-sentence sample lacks counts as an error. Per build: benchmarks/work/gap/<task>-<seed>/<lead>.
Writes benchmarks/results/student_gap.{json,md}.
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

from run import publish, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import Stages, distil_into  # noqa: E402
from teacher_choice import SEEDS, TASKS  # noqa: E402

# lead -> rasa-kd augment options over the build's own
TRANSFER_LEADS = {
    "rules": {"method": "rules"},
    "lm-half": {"method": "rules,lm", "lm": "smollm2"},
    "lm-half-conditional": {"method": "rules,lm", "lm": "smollm2", "conditional": True},
    "lm-2k-conditional": {"method": "rules,lm", "lm": "smollm2", "conditional": True, "lm_size": 2000},
}
LEADS = {
    **{lead: {"selection": "teacher"} for lead in TRANSFER_LEADS},
    "selection-dev": {"selection": "dev"},
    "selection-teacher": {"selection": "teacher"},
    "selection-last": {"selection": "last"},
    "epochs-16": {"selection": "teacher", "epochs": 16},
    "words-glove": {"selection": "teacher", "vocab": "words", "vectors": "glove50"},
}


def accuracy(student, nlu: Path) -> float:
    from rasa_kd.formats.nlu_yaml import read_examples

    examples = read_examples(nlu)
    predicted = student.predict_labels([e.text for e in examples])
    return sum(p == e.intent for p, e in zip(predicted, examples)) / len(examples)


def lead_run(task: str, seed: int, lead: str, work: Path) -> Dict:
    from rasa_kd.students import load
    from rasa_kd.students.presets import distil_options

    build = work / "small" / f"{task}-{seed}" / "pipeline"
    if not (build / "transfer-labelled").is_dir():
        from small_assistants import pipeline_run
        from teacher_choice import TaskRun

        pipeline_run(TaskRun(task, work / "choice"), seed, build.parent)  # the same build, its DIET run left out
    pool = work / "choice" / task / "pool"
    folder = work / "gap" / f"{task}-{seed}"
    out = folder / lead
    labelled = transfer_set(build, folder, lead) if lead in TRANSFER_LEADS else build / "transfer-labelled"
    options = distil_options(transfer=labelled, dev=build / "data" / "dev.yml", out=out, **LEADS[lead])
    stages = Stages(folder)
    stages.run_options(lead, options, [labelled, build / "data"], out, lambda o: distil_into(o, folder))
    student = load(out)
    recipe = json.loads((out / "student.json").read_text())["recipe"]
    transfer_seconds = sum(stages.seconds(f"{lead}-{stage}") or 0 for stage in ("augment", "label"))
    build_method = recorded_augment(build)["method"]
    return {"dev": accuracy(student, pool / "dev.yml"), "test": accuracy(student, pool / "test.yml"),
            "build_method": build_method,
            "best_epoch": recipe["best_epoch"], "epochs_run": len(recipe["dev_history"]),
            "minutes": round(recipe["training_seconds"] / 60, 2),
            "transfer_minutes": round(transfer_seconds / 60, 1) if lead in TRANSFER_LEADS else None}


def recorded_augment(build: Path) -> Dict:
    """The augment options the build's pipeline ran with (its stage record)."""
    return json.loads((build / ".stages" / "augment.json").read_text())["options"]


def transfer_set(build: Path, folder: Path, lead: str) -> Path:
    """The lead's labelled transfer set: the build's augment options with the lead's changes,
    labelled by the build's teacher(s)."""
    from rasa_kd.transfer.augment import AugmentOptions, augment
    from rasa_kd.transfer.label import LabelOptions, label

    recorded = recorded_augment(build)
    changes = TRANSFER_LEADS[lead]
    options = AugmentOptions(**{**recorded, **changes, "train": Path(recorded["train"]),
                                "exclude": [Path(p) for p in recorded["exclude"] or []],
                                "out": folder / f"{lead}-transfer", "quiet": True,
                                "lm_work": folder / ("lm-conditional" if changes.get("conditional") else "lm")})
    teachers = sorted(p for p in build.iterdir() if p.name.startswith("teacher") and p.is_dir())
    stages = Stages(folder)
    stages.run_options(f"{lead}-augment", options, [options.train, *options.exclude], options.out, augment)
    labelled = folder / f"{lead}-labelled"
    stages.run_options(f"{lead}-label", LabelOptions(teacher=teachers, transfer=options.out, out=labelled, quiet=True),
                       [options.out, *teachers], labelled, label)
    return labelled


def teacher_test(task: str, seed: int, work: Path) -> float:
    metrics = work / "small" / f"{task}-{seed}" / "pipeline" / "metrics-teacher.json"
    return json.loads(metrics.read_text())["scores"]["accuracy"]


def labelled_runs(lead: str, seeds: Dict) -> Dict[str, List[Dict]]:
    """The lead's runs by row label: a selection lead on a build whose own transfer set is not
    rules-only gets its own row (`lead (auto build)`)."""
    rows: Dict[str, List[Dict]] = {}
    for run in seeds.values():
        method = run.get("build_method", "rules")
        label = lead if lead in TRANSFER_LEADS or method == "rules" else f"{lead} ({method} build)"
        rows.setdefault(label, []).append(run)
    return rows


def summary(tasks: Dict) -> List[str]:
    lines = ["| task | lead | dev | test | test x teacher | epochs run | best epoch | transfer-set min | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, leads in tasks.items():
        for lead, seeds in leads.items():
            for label, runs in labelled_runs(lead, seeds).items():
                transfer = [r["transfer_minutes"] for r in runs if r.get("transfer_minutes") is not None]
                lines.append(f"| {name} | {label} | {mean(r['dev'] for r in runs):.4f} "
                             f"| {mean(r['test'] for r in runs):.4f} "
                             f"| {mean(r['test'] / r['teacher_test'] for r in runs):.3f} "
                             f"| {mean(r['epochs_run'] for r in runs):.1f} | {mean(r['best_epoch'] for r in runs):.1f} "
                             f"| {f'{mean(transfer):.1f}' if transfer else ''} | {len(runs)} |")
    return lines + ["", "Mean over the builds each lead ran on (dev decides; compare leads on the same builds):", "",
                    *lead_means(tasks)]


def lead_means(tasks: Dict) -> List[str]:
    """Each lead's mean over the builds (task x seed) it ran on."""
    rows: Dict[str, List[Dict]] = {}
    for lead in LEADS:
        for leads in tasks.values():
            for label, runs in labelled_runs(lead, leads.get(lead, {})).items():
                rows.setdefault(label, []).extend(runs)
    lines = ["| lead | builds | dev | test | test x teacher |", "|---|---|---|---|---|"]
    for label, runs in rows.items():
        lines.append(f"| {label} | {len(runs)} | {mean(r['dev'] for r in runs):.4f} | {mean(r['test'] for r in runs):.4f} "
                     f"| {mean(r['test'] / r['teacher_test'] for r in runs):.3f} |")
    return lines


def markdown(tasks: Dict) -> str:
    return "\n".join(["# The student-teacher gap on small assistants (300 training sentences)", "",
                      "Default-preset BiLSTM students on the builds of benchmarks/small_assistants.py, one recipe "
                      "change each (benchmarks/student_gap.py); dev = the pool's dev split, never trained on. "
                      "Transfer-set min: the lead's own transfer set (LM fine-tuning, sampling, teacher labelling) "
                      "on 2 cores; other jobs ran beside some of these, so they are upper bounds.", "",
                      *summary(tasks)]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=tuple(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[SEEDS[0]])
    parser.add_argument("--leads", nargs="+", choices=tuple(LEADS), default=list(LEADS))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = parser.parse_args(argv)
    quiet_environment()
    result = results_so_far("student_gap", "benchmarks/student_gap.py")
    for task in args.tasks:
        for seed in args.seeds:
            for lead in args.leads:
                entry = {**lead_run(task, seed, lead, args.work), "teacher_test": teacher_test(task, seed, args.work)}
                result["tasks"].setdefault(task, {}).setdefault(lead, {})[str(seed)] = entry
                print(f"{task} seed {seed} {lead}: dev {entry['dev']:.4f} test {entry['test']:.4f}", flush=True)
                publish("student_gap", result, markdown(result["tasks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
