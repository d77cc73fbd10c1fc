"""Which teacher recipe wins where, on English, Spanish and Thai data, with a few hundred
training sentences (as a new assistant has) and with all of them:

  minilm-6ep           MiniLM fine-tuned for 6 epochs (the teacher stage before issue 30)
  minilm               MiniLM fine-tuned for 6 epochs or at least 300 optimiser steps (default)
  usem-frozen          USE-multilingual frozen, logistic-regression head
  usem-6ep, usem       USE-multilingual fine-tuned from that head, as the MiniLM pair
  a+b                  the mean of two teachers' logits (an ensemble, as `rasa-kd label` makes it)

    .venv/bin/python benchmarks/teacher_choice.py                          # every task, size, seed, recipe
    .venv/bin/python benchmarks/teacher_choice.py --tasks mtod-th --sizes 300 --recipes usem-frozen

Per task (cached stages in benchmarks/work/choice/<task>, so a re-run resumes):
  convert   ../shared/data -> Rasa YAML (rasa-kd convert)
  pool      the training pool and a selection dev set the teachers never train on: the task's
            own dev split (Sara, MTOD eval), else a stratified 10 % of train (TREC; MTOD-en,
            whose train file is missing here: its eval file is the pool)
  sample    per size and seed: a stratified sample of the pool (`full`: the whole pool)
  teacher   `rasa-kd teacher` with each recipe's settings and its own defaults otherwise
            (early stopping on a stratified 10 % of the sample, as a user's run would)
Scores: accuracy on the selection dev set (recipes are compared there) and on test (reported;
a test intent absent from the sample counts as an error). Writes
benchmarks/results/teacher_choice.{json,md}.
"""
import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import Stages  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Task:
    dataset: str
    source: str
    lang: Optional[str] = None
    dev: Optional[str] = "dev"  # the converted split the recipes are compared on; None: 10 % of the pool
    pool: str = "train"


TASKS = {
    "sara": Task("sara", "sara"),
    "trec": Task("trec", "trec", dev=None),
    "mtod-en": Task("mtod", "mtod", "en", dev=None, pool="dev"),
    "mtod-es": Task("mtod", "mtod", "es"),
    "mtod-th": Task("mtod", "mtod", "th"),
}
RECIPES = {
    "minilm-6ep": {"model": "minilm", "min_steps": 0},  # the teacher stage's default before issue 30
    "minilm": {"model": "minilm"},  # at least 300 optimiser steps (`rasa-kd teacher --min-steps`)
    "usem-frozen": {"model": "usem", "encoder": "frozen"},
    "usem-6ep": {"model": "usem", "min_steps": 0},
    "usem": {"model": "usem"},
}
ENSEMBLES = {"minilm+usem-frozen": ("minilm", "usem-frozen"), "minilm+usem": ("minilm", "usem")}
SIZES = ("300", "full")
SEEDS = (0, 1, 2)
SPLITS = ("dev", "test")


class TaskRun:
    def __init__(self, name: str, work: Path):
        self.name, self.task = name, TASKS[name]
        self.work = work / name
        self.stages = Stages(self.work)

    def convert(self) -> Path:
        from rasa_kd.nlu_data.convert import ConvertOptions, convert_from_options

        out = self.work / "converted"
        options = ConvertOptions(dataset=self.task.dataset, source=SHARED / self.task.source, out=out,
                                 lang=self.task.lang)
        self.stages.run_options("convert", options, [SHARED / self.task.source], out, convert_from_options)
        return out

    def pool(self) -> Path:
        from rasa_kd.formats.nlu_yaml import read_examples, write_examples
        from rasa_kd.nlu_data.split import stratified_split

        converted, out = self.convert(), self.work / "pool"

        def make():
            out.mkdir(parents=True, exist_ok=True)
            pool = read_examples(converted / f"{self.task.pool}.yml")
            if self.task.dev is None:
                pool, dev = stratified_split(pool, 0.1, seed=42)
            else:
                dev = read_examples(converted / f"{self.task.dev}.yml")
            write_examples(out / "pool.yml", pool)
            write_examples(out / "dev.yml", dev)
            write_examples(out / "test.yml", read_examples(converted / "test.yml"))

        self.stages.run("pool", {"task": self.name}, [converted], out, make)
        return out

    def sample(self, size: str, seed: int) -> Path:
        from rasa_kd.formats.nlu_yaml import read_examples, write_examples
        from rasa_kd.nlu_data.split import stratified_split

        pool, out = self.pool(), self.work / f"sample-{size}-{seed}"

        def make():
            examples = read_examples(pool / "pool.yml")
            if size != "full" and int(size) < len(examples):
                examples, _ = stratified_split(examples, 1 - int(size) / len(examples), seed=seed)
            out.mkdir(parents=True, exist_ok=True)
            write_examples(out / "train.yml", examples)

        self.stages.run(f"sample-{size}-{seed}", {"size": size, "seed": seed}, [pool], out, make)
        return out / "train.yml"

    def teacher(self, recipe: str, size: str, seed: int) -> Dict:
        from rasa_kd.teachers.fine_tune import TeacherOptions, train_from_options

        train, out = self.sample(size, seed), self.teacher_folder(recipe, size, seed)
        options = TeacherOptions(train=train, out=out, seed=seed, quiet=True, allow_unknown_tokens=True,
                                 **RECIPES[recipe])
        started = time.time()
        self.stages.run_options(out.name, options, [train], out, train_from_options)
        metrics = json.loads((out / "metrics.json").read_text())
        return {**self.scores(self.logits(out)), "train_examples": metrics["train_examples"],
                "train_seconds": metrics["train_seconds"], "unknown_word_share": metrics["unknown_word_share"],
                "stage_seconds": round(time.time() - started, 1)}

    def ensemble(self, members: Sequence[str], size: str, seed: int) -> Dict:
        """The mean of the members' logits, as `rasa-kd label` averages an ensemble (each member
        trained above on the same sample)."""
        logits = [self.logits(self.teacher_folder(m, size, seed)) for m in members]
        return self.scores({split: np.mean([p[split] for p in logits], axis=0) for split in SPLITS},
                           labels=logits[0]["labels"])

    def teacher_folder(self, recipe: str, size: str, seed: int) -> Path:
        return self.work / f"teacher-{recipe}-{size}-{seed}"

    def logits(self, folder: Path) -> Dict:
        """The teacher's logits on dev and test, cached in the folder."""
        from rasa_kd.formats.nlu_yaml import read_examples
        from rasa_kd.teachers.folder import TeacherFolder

        cache = folder / "benchmark-logits.npz"
        if not cache.is_file():
            teacher, pool = TeacherFolder(folder), self.pool()
            arrays = {split: teacher.predict_logits([e.text for e in read_examples(pool / f"{split}.yml")])
                      for split in SPLITS}
            np.savez(cache, labels=np.array(teacher.labels), **arrays)
        with np.load(cache) as saved:
            return {key: saved[key] for key in saved.files}

    def scores(self, logits: Dict, labels=None) -> Dict:
        from rasa_kd.formats.nlu_yaml import read_examples

        labels = list(logits["labels"] if labels is None else labels)
        pool, scores = self.pool(), {}
        for split in SPLITS:
            examples = read_examples(pool / f"{split}.yml")
            predicted = [labels[i] for i in logits[split].argmax(axis=1)]
            scores[split] = round(float(np.mean([p == e.intent for p, e in zip(predicted, examples)])), 4)
        return scores


def summary_rows(results: Dict) -> List[str]:
    lines = ["| task | size | recipe | dev acc (mean over seeds) | test acc | seeds | train s |",
             "|---|---|---|---|---|---|---|"]
    for task, sizes in results.items():
        for size, recipes in sizes.items():
            for recipe, seeds in recipes.items():
                runs = list(seeds.values())
                seconds = [r["train_seconds"] for r in runs if "train_seconds" in r]
                lines.append(f"| {task} | {size} | {recipe} | {mean(r['dev'] for r in runs):.4f} | "
                             f"{mean(r['test'] for r in runs):.4f} | {len(runs)} | "
                             f"{mean(seconds) if seconds else 0:.0f} |")
    return lines


def record(tasks: Dict, name: str, size: str, recipe: str, seed: int, entry: Dict, result: Dict) -> None:
    tasks.setdefault(name, {}).setdefault(size, {}).setdefault(recipe, {})[str(seed)] = entry
    took = f" ({entry['train_seconds']:.0f} s)" if "train_seconds" in entry else ""
    print(f"{name} {size} {recipe} seed {seed}: dev {entry['dev']:.4f} test {entry['test']:.4f}{took}", flush=True)
    publish("teacher_choice", result, "\n".join(
        ["# Teacher recipes by task and training size", "",
         "Recipes are compared on the selection dev set (never trained on); test is reported. "
         "`a+b`: the mean of both teachers' logits (as `rasa-kd label` averages an ensemble).", "", *summary_rows(tasks)]) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=tuple(TASKS), default=list(TASKS))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="training sentences per sample, or full")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--recipes", nargs="+", choices=tuple(RECIPES), default=list(RECIPES))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "choice")
    args = parser.parse_args(argv)
    quiet_environment()
    result = results_so_far("teacher_choice", "benchmarks/teacher_choice.py")
    tasks = result["tasks"]
    for name in args.tasks:
        run = TaskRun(name, args.work)
        for size in args.sizes:
            seeds = [0] if size == "full" else args.seeds
            for seed in seeds:
                for recipe in args.recipes:
                    entry = run.teacher(recipe, size, seed)
                    record(tasks, name, size, recipe, seed, entry, result)
                for ensemble, members in ENSEMBLES.items():
                    if all(m in args.recipes for m in members):
                        record(tasks, name, size, ensemble, seed, run.ensemble(members, size, seed), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
