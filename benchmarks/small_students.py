"""Every preset on several intent datasets: accuracy kept, size and speed of what is deployed.

    .venv/bin/python benchmarks/small_students.py                       # all tasks, all presets
    .venv/bin/python benchmarks/small_students.py --tasks sara --presets balanced

Per task (cached stages in benchmarks/work/small/<task>, so a re-run resumes):
  convert   ../shared/data -> Rasa YAML (rasa-kd convert)
  data      train / dev / test: the task's own splits; TREC: dev = 10 % of train;
            rasa-demo: its test file repeats training sentences, so a stratified
            70/10/20 split of its training data (rasa-kd split)
  teacher   MiniLM-L6 with the teacher defaults, best epoch on dev
  augment   rules, the largest transfer-set size any selected preset asks for
  label     the teacher's logits
  per preset: distil (the preset's DistilOptions, its transfer-set size by
            --transfer-limit), export (fp32 + int8, the deployed runtime chosen on
            dev), evaluate (the deployed runtime: test with speed, dev without),
            `rasa train nlu` with the student pipeline (the Rasa model's tar size)

DIET: Rasa's default pipeline is taken from benchmarks/results/<task>.json where
`benchmarks/run.py` measured it on the same split (Sara full, TREC full), else not run
here (100 DIET epochs take 17+ minutes a dataset on 2 cores).

Writes benchmarks/results/small_students.json and .md. Presets are chosen on dev;
test scores are reported, never used for a choice.
"""
import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine, repo_relative, results_json, versions, write_atomically  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import Stages  # noqa: E402
from rasa_kd.students.presets import PRESET_NAMES, get_preset  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Task:
    dataset: str  # rasa-kd convert dataset
    source: str  # under ../shared/data
    convert_options: tuple = ()
    dev: Optional[str] = "dev"  # converted dev split; None: 10 % of train
    split_train: bool = False  # test = a stratified 20 % of train (rasa-demo)
    diet_from: Optional[str] = None  # benchmarks/results/<name>.json entry "full" measured DIET on this split
    train: str = "train"  # converted split to train on (MTOD English ships only its eval and test files)


TASKS = {
    "sara": Task("sara", "sara", diet_from="sara"),
    "trec": Task("trec", "trec", (("labels", "coarse"),), dev=None, diet_from="trec"),
    "trec50": Task("trec", "trec", (("labels", "fine"),), dev=None, diet_from="trec50"),
    "mtod-es": Task("mtod", "mtod", (("lang", "es"),)),
    "rasa-demo": Task("sara", "sara/rasa-demo", dev=None, split_train=True),
    # benchmarks/unknown_intents.py's held-out intents only: trains on 90 % of the eval file
    "mtod-en": Task("mtod", "mtod", (("lang", "en"),), dev=None, train="dev"),
}
DEFAULT_TASKS = ("sara", "trec", "trec50", "mtod-es", "rasa-demo")


class TaskRun:
    def __init__(self, name: str, work: Path, presets: List[str], latency_examples: int):
        self.name, self.task = name, TASKS[name]
        self.root = work / name
        self.stages = Stages(self.root)
        self.presets, self.latency_examples = presets, latency_examples
        self.converted, self.data = self.root / "converted", self.root / "data"

    def convert(self) -> None:
        from rasa_kd.nlu_data.convert import convert

        source = SHARED / self.task.source
        self.stages.run("convert", {"dataset": self.task.dataset, "source": str(source),
                                    **dict(self.task.convert_options)}, [source], self.converted,
                        lambda: convert(self.task.dataset, source, self.converted, force=True,
                                        **dict(self.task.convert_options)))

    def prepare(self) -> None:
        from rasa_kd.nlu_data import split

        if self.task.split_train:
            options = split.SplitOptions(nlu=self.converted / "train.yml", out=self.data, test_fraction=0.2,
                                         dev_fraction=0.1, seed=42)
            self.stages.run_options("data", options, [self.converted], self.data, split.split_from_options)
        else:
            trained = {} if self.task.train == "train" else {"train": self.task.train}
            self.stages.run("data", {"dev": self.task.dev, **trained}, [self.converted], self.data, self.copy_splits)

    def copy_splits(self) -> None:
        from rasa_kd.formats.nlu_yaml import read_examples, write_examples
        from rasa_kd.formats.outputs import atomic_output_dir
        from rasa_kd.nlu_data.split import stratified_split

        train = read_examples(self.converted / f"{self.task.train}.yml")
        if self.task.dev:
            dev = read_examples(self.converted / f"{self.task.dev}.yml")
        else:
            train, dev = stratified_split(train, 0.1, 42)
        with atomic_output_dir(self.data, force=True) as folder:
            write_examples(folder / "train.yml", train)
            write_examples(folder / "dev.yml", dev)
            write_examples(folder / "test.yml", read_examples(self.converted / "test.yml"))

    def file(self, split: str) -> Path:
        return self.data / f"{split}.yml"

    def teacher(self) -> Path:
        from rasa_kd.teachers import fine_tune

        out = self.root / "teacher"
        options = fine_tune.TeacherOptions(train=self.file("train"), dev=self.file("dev"), out=out, quiet=True)
        self.stages.run_options("teacher", options, [self.data], out, fine_tune.train_from_options)
        return out

    def n_train(self) -> int:
        from rasa_kd.formats.nlu_yaml import read_examples

        return len(read_examples(self.file("train")))

    def transfer(self, teacher: Path) -> Path:
        from rasa_kd.transfer import augment, label

        transfer, labelled = self.root / "transfer", self.root / "transfer-labelled"
        size = max(get_preset(p).transfer_size(self.n_train()) for p in self.presets)
        options = augment.AugmentOptions(train=self.file("train"), out=transfer, size=size, quiet=True,
                                         exclude=[self.file("dev"), self.file("test")])
        self.stages.run_options("augment", options, [self.data], transfer, augment.augment)
        self.stages.run_options("label", label.LabelOptions(teacher=[teacher], transfer=transfer, out=labelled,
                                                            quiet=True),
                                [transfer, teacher], labelled, label.label)
        return labelled

    def student(self, preset_name: str, labelled: Path, suffix: str = "", **values) -> Path:
        """The preset's student of `labelled`, exported; `suffix` names a variant's student (another
        teacher's labels, or `values`: DistilOptions laid over the preset's, e.g. transfer_limit)."""
        from rasa_kd.students import export
        from rasa_kd.formats.nlu_yaml import read_examples
        from rasa_kd.pipeline import distil_into
        from rasa_kd.students.presets import distil_options

        preset, out = get_preset(preset_name), self.root / f"student-{preset_name}{suffix}"
        originals = len(read_examples(self.file("train")))
        options = distil_options(preset_name, transfer=labelled, dev=self.file("dev"), out=out,
                                 **{"transfer_limit": originals + preset.transfer_size(originals), **values})
        self.stages.run_options(f"distil-{preset_name}{suffix}", options, [labelled, self.data], out,
                                lambda o: distil_into(o, self.root))
        self.stages.run_options(f"export-{preset_name}{suffix}", export.ExportOptions(
            model=out, quantize=True, data=self.file("dev"), int8_max_drop=preset.int8_max_drop),
            [out / "model.safetensors"], out / "model.int8.onnx", export.export_from_options)
        return out

    def evaluate(self, name: str, model: Path) -> Dict:
        from rasa_kd.evaluation import evaluate

        results = {}
        for split in ("test", "dev"):
            out = self.root / "metrics" / f"{name}-{split}.json"
            description = {"model": str(model), "data": split, "runtime": "auto", "speed": split == "test"}
            self.stages.run(f"evaluate-{name}-{split}", description, [model, self.file(split)], out,
                            lambda s=split, o=out: evaluate.evaluate(
                                model, self.file(s), o, speed=s == "test", memory=s == "test",
                                latency_examples=self.latency_examples))
            results[split] = json.loads(out.read_text())
        return results

    def rasa_model(self, preset_name: str, student: Path) -> Path:
        import rasa_runner

        folder = self.root / "rasa" / preset_name
        model = folder / "student.tar.gz"

        def train() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.yml").write_text(rasa_runner.student_config(student.resolve()))
            rasa_runner.train_nlu(folder / "config.yml", self.file("train"), folder, "student")

        self.stages.run(f"rasa-train-{preset_name}", {"student": str(student)}, [student, self.data], model, train)
        return model

    def run(self) -> Dict:
        self.convert()
        self.prepare()
        teacher = self.teacher()
        labelled = self.transfer(teacher)
        result = {"data": self.counts(), "teacher": system_entry(self.evaluate("teacher", teacher), teacher,
                                                                 self.stages.seconds("teacher")),
                  "presets": {}, "diet": diet_entry(self.task)}
        for preset in self.presets:
            student = self.student(preset, labelled)
            entry = system_entry(self.evaluate(preset, student), student, self.stages.seconds(f"distil-{preset}"))
            model = self.rasa_model(preset, student)
            entry.update(rasa_model_bytes=model.stat().st_size, **student_facts(student))
            entry["x_teacher"] = round(entry["test"]["accuracy"] / result["teacher"]["test"]["accuracy"], 4)
            entry["dev_x_teacher"] = round(entry["dev"]["accuracy"] / result["teacher"]["dev"]["accuracy"], 4)
            result["presets"][preset] = entry
        result["stage_seconds"] = {name: self.stages.seconds(name) for name in self.stages.timings}
        return result

    def counts(self) -> Dict:
        from rasa_kd.formats.nlu_yaml import read_examples

        return {split: len(read_examples(self.file(split))) for split in ("train", "dev", "test")}


def system_entry(metrics: Dict, model: Path, train_seconds: Optional[float]) -> Dict:
    test = metrics["test"]
    entry = {"model": str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else str(model),
             "kind": test["kind"], "test": test["scores"], "dev": metrics["dev"]["scores"],
             "parameters": test["parameters"], "size_bytes": test["size_bytes"],
             "latency_ms_batch1": test["latency_ms_batch1"], "sentences_per_second": test["sentences_per_second"],
             "train_minutes": round(train_seconds / 60, 2) if train_seconds else None}
    for key in ("size_parts_bytes", "memory_mb"):
        if key in test:
            entry[key] = test[key]
    return entry


def student_facts(student: Path) -> Dict:
    manifest = json.loads((student / "student.json").read_text())
    recipe = manifest["recipe"]
    return {"runtime": manifest.get("runtime"), "runtime_reason": manifest.get("runtime_reason"),
            "vocab_size": manifest["tokenizer"]["vocab_size"], "best_epoch": recipe.get("best_epoch"),
            "epochs_run": len(recipe.get("dev_history", [])), "transfer_sentences": recipe.get("transfer_sentences"),
            "recipe": {k: recipe.get(k) for k in ("preset", "student", "vocab", "embedding_dim", "embedding_mode",
                                                  "hidden_size", "fc_size", "epochs", "patience", "transfer_limit")}}


def diet_entry(task: Task) -> Optional[Dict]:
    path = ROOT / "benchmarks" / "results" / f"{task.diet_from}.json"
    if not task.diet_from or not path.exists():
        return None
    full = json.loads(path.read_text()).get("full")
    if not full:
        return None
    diet = full["systems"]["diet"]
    return {"source": f"benchmarks/results/{task.diet_from}.json (full, same splits)", "test": diet["scores"]["test"],
            "latency_ms_batch1": diet["latency_ms_batch1"], "rasa_model_bytes": diet["size_bytes"],
            "train_minutes": round((diet.get("train_seconds") or 0) / 60, 2)}


# ---------------------------------------------------------------- report


def markdown(results: Dict) -> str:
    lines = ["# Small students: every preset on several intent datasets", "",
             "Produced by `benchmarks/small_students.py` on this machine "
             f"({results['machine']['cores']} cores, {results['machine']['cpu']}). Test accuracy of the deployed "
             "runtime (int8 ONNX unless it lost dev accuracy); x teacher = student / teacher test accuracy; "
             "size = the student package's files that the runtime loads; Rasa tar = `rasa train nlu` model with "
             "the student pipeline; ms = batch 1, sentences/s = batch 64; minutes = distillation only. "
             "Presets are compared on dev (dev x teacher); test is reported only.", ""]
    for task, result in results["tasks"].items():
        lines += [task_heading(task, result["data"]), "", "| system | test acc | x teacher | dev x teacher | size MB | Rasa tar MB | parameters | "
                      "ms/example | sentences/s | minutes | runtime |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        teacher = result["teacher"]
        lines.append(row("teacher (MiniLM-L6, PyTorch)", teacher, None, "pytorch"))
        for preset, entry in result["presets"].items():
            lines.append(row(f"**{preset}**" if preset == "balanced" else preset, entry, entry, entry["runtime"]))
        diet = result.get("diet")
        if diet:
            lines.append(f"| Rasa DIET (default pipeline) | {diet['test']['accuracy']:.4f} | "
                         f"{diet['test']['accuracy'] / teacher['test']['accuracy']:.3f} | | | "
                         f"{diet['rasa_model_bytes'] / 1e6:.1f} | | {diet['latency_ms_batch1']:.2f} (parse) | | "
                         f"{diet['train_minutes']:.1f} | from {diet['source']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def task_heading(task: str, data: Dict) -> str:
    return f"## {task} (train {data['train']:,}, dev {data['dev']:,}, test {data['test']:,} unique examples)"


def row(name: str, entry: Dict, student: Optional[Dict], runtime: str) -> str:
    x = f"{student['x_teacher']:.3f}" if student else "1"
    dev_x = f"{student['dev_x_teacher']:.3f}" if student else "1"
    tar = f"{student['rasa_model_bytes'] / 1e6:.1f}" if student else ""
    minutes = f"{entry['train_minutes']:.1f}" if entry.get("train_minutes") else ""
    return (f"| {name} | {entry['test']['accuracy']:.4f} | {x} | {dev_x} | {entry['size_bytes'] / 1e6:.2f} | {tar} | "
            f"{entry['parameters'].get('total', 0):,} | {entry['latency_ms_batch1']:.2f} | "
            f"{entry['sentences_per_second']:,.0f} | {minutes} | {runtime} |")


def write_results(results_dir: Path, results: Dict) -> None:
    write_atomically(results_dir / "small_students.json", results_json(results))
    write_atomically(results_dir / "small_students.md", repo_relative(markdown(results)))


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(DEFAULT_TASKS))
    parser.add_argument("--presets", nargs="+", choices=PRESET_NAMES, default=list(PRESET_NAMES))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "small")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--latency-examples", type=int, default=200)
    args = parser.parse_args(argv)
    from rasa_kd.errors import UserError

    path = args.results / "small_students.json"
    results = json.loads(path.read_text()) if path.exists() else {"tasks": {}}
    results.update(benchmark="benchmarks/small_students.py", machine=machine(), versions=versions())
    for task in args.tasks:
        started = time.time()
        try:
            result = TaskRun(task, args.work, args.presets, args.latency_examples).run()
        except UserError as error:
            print(f"error: {task}: {error}", file=sys.stderr)
            return 2
        old = results["tasks"].get(task, {})
        result["presets"] = {**old.get("presets", {}), **result["presets"]}
        result["run_seconds"] = round(time.time() - started, 1)
        result["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results["tasks"][task] = result
        write_results(args.results, results)  # after every task: an interrupted run keeps what finished
        print(markdown({**results, "tasks": {task: result}}))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
