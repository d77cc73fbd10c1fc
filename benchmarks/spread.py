"""Run-to-run spread of the default student on full data sets (issue 32): each seed makes its own
transfer set (augment + label by one teacher) and distils the default preset's student from it, as
a user retraining an unchanged assistant would; which weights the student keeps is then scored
post hoc from the weights saved at the end of every epoch:

  default     the epoch dev accuracy picks, early stopping after `patience` epochs without a
              better one (what `--selection dev` keeps; Sara and TREC have 300+ dev sentences)
  last        the last epoch (`--selection last`)
  avg-last-K  the mean of the last K epochs' weights (stochastic weight averaging over the
              decaying learning rate; no dev choice at all)
  avg-best-K  the mean of the default's epoch and the K-1 before it (fewer when it is earlier)

    .venv/bin/python benchmarks/spread.py                          # sara and trec, seeds 0 1 2
    .venv/bin/python benchmarks/spread.py --tasks sara --seeds 0
    .venv/bin/python benchmarks/spread.py --tasks trec50 --seeds 0 --leads ce-t2   # a recipe change

Leads (DistilOptions over the default preset's, each distilled from every seed's transfer set):
  ce-t2       soft cross-entropy at temperature 2 instead of MSE on logits (many-class sets)
  accurate    the accurate preset (256-d embeddings, 256 units: 2.3x the parameters)
  vectors-B   the student's sentence vector also learns the teacher's (`distil --vector-weight B`, cosine
              through a learned projection) from the seed's transfer set labelled with `label --vectors`

Builds (data splits, teacher) are those of benchmarks/small_students.py (benchmarks/work/small/
<task>); per seed: benchmarks/work/spread/<task>/seed-<S>/ (cached stages, resumable). Scores are
the PyTorch student's accuracy on dev (the selection set) and test (reported); the spread is the
standard deviation of test accuracy over seeds. Writes benchmarks/results/spread.{json,md}.
"""
import argparse
import json
import sys
from pathlib import Path
from statistics import mean, pstdev
from typing import Dict, Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import Stages  # noqa: E402
from small_students import TASKS, TaskRun  # noqa: E402
from student_gap import accuracy  # noqa: E402

PRESET = "balanced"
TITLE = "# Run-to-run spread of the default student (benchmarks/spread.py)"
AVERAGED = (2, 3, 4)
SNAPSHOTS = "snapshots"
# lead -> DistilOptions over the default preset's ("preset": another preset)
LEADS = {
    "default": {},
    "ce-t2": {"loss": "ce", "temperature": 2.0},
    "accurate": {"preset": "accurate"},
    "vectors-1": {"vector_weight": 1.0},
}


def epoch_snapshots(folder: Path):
    """A TrainerCallback saving the student's weights at the end of every epoch (epoch-N.safetensors)."""
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            student = getattr(model, "student", model)
            folder.mkdir(parents=True, exist_ok=True)
            weights = {name: tensor.detach().cpu().contiguous() for name, tensor in student.state_dict().items()}
            save_file(weights, str(folder / f"epoch-{round(state.epoch)}.safetensors"))

    return Snapshots()


def seed_transfer(build: TaskRun, teacher: Path, seed: int, folder: Path, vectors: bool = False) -> Path:
    """The seed's labelled transfer set (the default size, augment seed = `seed`); `vectors`: with the
    teacher's sentence vectors (a folder of its own)."""
    from rasa_kd.students.presets import get_preset
    from rasa_kd.transfer import augment, label

    stages = Stages(folder)
    transfer, labelled = folder / "transfer", folder / ("transfer-labelled" + ("-vectors" if vectors else ""))
    size = get_preset(PRESET).transfer_size(build.n_train())
    options = augment.AugmentOptions(train=build.file("train"), out=transfer, size=size, seed=seed, quiet=True,
                                     exclude=[build.file("dev"), build.file("test")])
    stages.run_options("augment", options, [build.data], transfer, augment.augment)
    stages.run_options("label-vectors" if vectors else "label",
                       label.LabelOptions(teacher=[teacher], transfer=transfer, out=labelled, quiet=True, vectors=vectors),
                       [transfer, teacher], labelled, label.label)
    return labelled


def lead_student(build: TaskRun, labelled: Path, seed: int, folder: Path, lead: str) -> Path:
    """The lead's student of `labelled`, all epochs run, their weights in <folder>/snapshots; returns
    `folder` (the default's: the seed's folder; a lead's: a folder inside it)."""
    from rasa_kd.students import distil
    from rasa_kd.students.presets import distil_options

    changes = dict(LEADS[lead])
    folder = folder if lead == "default" else folder / lead
    options = distil_options(changes.pop("preset", PRESET), transfer=labelled, dev=build.file("dev"),
                             out=folder / "student", seed=seed, selection="last", work=folder / "distil-work",
                             **changes)
    Stages(folder).run_options("distil", options, [labelled, build.data], options.out,
                               lambda o: distil.distil(o, callbacks=[epoch_snapshots(folder / SNAPSHOTS)]))
    return folder


def kept_epochs(history: List[Dict], patience: int) -> Dict[str, List[int]]:
    """Variant -> the epochs whose weights it averages (one epoch: that epoch's weights)."""
    epochs = [round(entry["epoch"]) for entry in history]
    best, best_score, waited = epochs[0], -1.0, 0
    for epoch, entry in zip(epochs, history):
        if entry["accuracy"] > best_score:
            best, best_score, waited = epoch, entry["accuracy"], 0
        else:
            waited += 1
            if patience and waited >= patience:  # 0: never stops
                break
    upto_best = epochs[:epochs.index(best) + 1]
    return {"default": [best], "last": [epochs[-1]],
            **{f"avg-last-{k}": epochs[-k:] for k in AVERAGED if k <= len(epochs)},
            **{f"avg-best-{k}": upto_best[-k:] for k in AVERAGED}}


def averaged(folder: Path, epochs: List[int]) -> Dict:
    from safetensors.torch import load_file

    states = [load_file(str(folder / SNAPSHOTS / f"epoch-{e}.safetensors")) for e in epochs]
    return {name: sum(state[name].float() for state in states) / len(states) if states[0][name].is_floating_point()
            else states[-1][name] for name in states[0]}


def deployed(build: TaskRun, folder: Path, variant: str, epochs: List[int]) -> Dict:
    """The variant as a user gets it: its weights in a package, exported (int8 when it holds dev
    accuracy), loaded with runtime auto."""
    import shutil

    from safetensors.torch import save_file

    from rasa_kd.formats.student_package import WEIGHTS
    from rasa_kd.students import export, load
    from rasa_kd.students.presets import get_preset

    package = folder / f"deployed-{variant}"
    if not (package / "student.json").is_file():
        staging = package.with_name(package.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder / "student", staging)
        save_file(averaged(folder, epochs), str(staging / WEIGHTS), metadata={"format": "pt"})
        export.export_from_options(export.ExportOptions(model=staging, quantize=True, data=build.file("dev"),
                                                        int8_max_drop=get_preset(PRESET).int8_max_drop))
        staging.rename(package)
    student = load(package, runtime="auto")
    return {"runtime": json.loads((package / "student.json").read_text()).get("runtime"),
            **{split: round(accuracy(student, build.file(split)), 4) for split in ("dev", "test")}}


def variant_scores(build: TaskRun, folder: Path, deploy: List[str]) -> Dict:
    from rasa_kd.students import load

    student = load(folder / "student")
    recipe = json.loads((folder / "student" / "student.json").read_text())["recipe"]
    scores = {}
    for variant, epochs in kept_epochs(recipe["dev_history"], recipe["patience"]).items():
        student.backend.model.load_state_dict(averaged(folder, epochs))
        scores[variant] = {"epochs": epochs, **{split: round(accuracy(student, build.file(split)), 4)
                                                for split in ("dev", "test")}}
        if variant in deploy:
            scores[variant]["deployed"] = deployed(build, folder, variant, epochs)
    return {"variants": scores, "training_minutes": round(recipe["training_seconds"] / 60, 2)}


def summary(tasks: Dict) -> List[str]:
    lines = ["| task | variant | seeds | dev mean | test mean | test sd | test min-max | test x teacher |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry, variant, scores in variant_runs(tasks):
        lines.append(f"| {name} | {variant} | {len(scores)} | {score_cells(scores, entry['teacher_test'])} |")
    leads = lead_table(tasks)
    if len(leads) > 2:
        lines += ["", "Leads (each from the same seeds' transfer sets; the epoch dev picks, as `default` above):", "",
                  *leads]
    deployed = deployed_table(tasks)
    return lines + (["", "Deployed (exported; runtime auto, int8 where it held dev accuracy):", "", *deployed]
                    if len(deployed) > 2 else [])


def lead_table(tasks: Dict) -> List[str]:
    """Each lead against the default on the seeds it ran on (the dev-picked epoch of each)."""
    lines = ["| task | lead | seeds | dev mean | test mean | test sd | test x teacher "
             "| default on those seeds: dev / test |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in tasks.items():
        for lead, seeds in entry.get("leads", {}).items():
            runs = [scores["variants"]["default"] for scores in seeds.values()]
            default = [entry["seeds"][seed]["variants"]["default"] for seed in seeds if seed in entry["seeds"]]
            test = [r["test"] for r in runs]
            lines.append(f"| {name} | {lead} | {len(runs)} | {mean(r['dev'] for r in runs):.4f} | {mean(test):.4f} "
                         f"| {100 * pstdev(test):.2f} pts | {mean(test) / entry['teacher_test']:.3f} "
                         f"| {mean(r['dev'] for r in default):.4f} / {mean(r['test'] for r in default):.4f} |")
    return lines


def deployed_table(tasks: Dict) -> List[str]:
    """The variants scored as deployed, over the seeds of each task."""
    lines = ["| task | variant | runtimes | dev mean | test mean | test sd | test min-max | test x teacher |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry, variant, scores in variant_runs(tasks):
        if all("deployed" in score for score in scores):
            deployed = [score["deployed"] for score in scores]
            lines.append(f"| {name} | {variant} | {', '.join(str(d['runtime']) for d in deployed)} "
                         f"| {score_cells(deployed, entry['teacher_test'])} |")
    return lines


def variant_runs(tasks: Dict) -> Iterator[Tuple[str, Dict, str, List[Dict]]]:
    """(task, its entry, variant, the variant's scores on each seed) for every variant of every task."""
    for name, entry in tasks.items():
        runs = list(entry["seeds"].values())
        for variant in runs[0]["variants"]:
            yield name, entry, variant, [run["variants"][variant] for run in runs]


def score_cells(scores: List[Dict], teacher_test: float) -> str:
    """Dev mean | test mean | test sd | test min-max | test x teacher, over `scores` (one per seed)."""
    test = [score["test"] for score in scores]
    return (f"{mean(score['dev'] for score in scores):.4f} | {mean(test):.4f} | {100 * pstdev(test):.2f} pts "
            f"| {min(test):.4f}-{max(test):.4f} | {mean(test) / teacher_test:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["sara", "trec"], choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--leads", nargs="+", default=["default"], choices=list(LEADS),
                        help="recipes distilled from each seed's transfer set (default: the default recipe)")
    parser.add_argument("--deploy", nargs="*", default=["default"],
                        help="variants also exported and scored as deployed (runtime auto: int8 when it holds dev)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = parser.parse_args(argv)
    quiet_environment()
    results = results_so_far("spread", "benchmarks/spread.py")
    tasks = results.setdefault("tasks", {})
    for name in args.tasks:
        build = TaskRun(name, args.work / "small", [PRESET], latency_examples=20)
        build.convert()
        build.prepare()
        teacher = build.teacher()
        entry = tasks.setdefault(name, {"seeds": {}})
        entry["teacher_test"] = round(accuracy_of_teacher(build, teacher), 4)
        for seed in args.seeds:
            folder = args.work / "spread" / name / f"seed-{seed}"
            for lead in args.leads:
                labelled = seed_transfer(build, teacher, seed, folder, vectors="vector_weight" in LEADS[lead])
                scores = variant_scores(build, lead_student(build, labelled, seed, folder, lead),
                                        args.deploy if lead == "default" else [])
                if lead == "default":
                    entry["seeds"][str(seed)] = scores
                else:
                    entry.setdefault("leads", {}).setdefault(lead, {})[str(seed)] = scores
                publish("spread", results, "\n".join([TITLE, "", *summary(tasks)]))


def accuracy_of_teacher(build: TaskRun, teacher: Path) -> float:
    return build.evaluate("teacher", teacher)["test"]["scores"]["accuracy"]


if __name__ == "__main__":
    main()
