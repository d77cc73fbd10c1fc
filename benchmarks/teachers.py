"""Teacher choice: what a stronger backbone or an ensemble buys the default student, and what it costs.

    .venv/bin/python benchmarks/teachers.py --tasks sara               # minilm, mpnet, usem and their ensembles
    .venv/bin/python benchmarks/teachers.py --tasks sara --teachers minilm minilm+usem

Needs `make mpnet` (the MPNet-base teacher) for the mpnet sets. Runs in the work
folders of benchmarks/small_students.py (benchmarks/work/small/<task>) and reuses
their stages: the same converted data and splits, the same MiniLM teacher and the
same unlabelled transfer set. Per teacher set it adds (each a resumable stage):

  teacher-mpnet           `rasa-kd teacher --model mpnet` with the teacher defaults
  label-<set>             the transfer set labelled by the set (an ensemble averages logits)
  distil/export-<set>     the default preset's student (balanced) of that labelling
  evaluate                teacher and student on test (with speed) and dev

Writes benchmarks/results/teachers.json and .md: per backbone the teacher's scores,
training minutes and labelling sentences/s; per teacher set the default student's
scores, x teacher and size. Sets are compared on dev; test is reported only.
"""
import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from small_students import TASKS, TaskRun, student_facts, system_entry, task_heading  # noqa: E402
from run import publish, results_json, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.students.presets import DEFAULT_PRESET  # noqa: E402

BACKBONES = {"minilm": "MiniLM-L6 (22M)", "mpnet": "MPNet-base (110M)", "usem": "USE-multilingual (69M)"}
TEACHER_SETS = ("minilm", "mpnet", "minilm+mpnet", "usem", "minilm+usem")


class TeacherRun(TaskRun):
    def __init__(self, name: str, work: Path, latency_examples: int):
        super().__init__(name, work, [DEFAULT_PRESET], latency_examples)

    def backbone_teacher(self, backbone: str) -> Path:
        """The task's teacher on `backbone`; minilm is small_students.py's teacher stage."""
        from rasa_kd.teachers import fine_tune

        if backbone == "minilm":
            return self.teacher()
        out = self.root / f"teacher-{backbone}"
        options = fine_tune.TeacherOptions(train=self.file("train"), dev=self.file("dev"), out=out, model=backbone,
                                         quiet=True)
        self.stages.run_options(f"teacher-{backbone}", options, [self.data], out, fine_tune.train_from_options)
        return out

    def labelled(self, teacher_set: str, teachers: List[Path], transfer: Path) -> Path:
        from rasa_kd.transfer import label

        if teacher_set == "minilm":
            return self.root / "transfer-labelled"  # labelled by small_students.py's label stage
        out = self.root / f"transfer-labelled-{teacher_set}"
        self.stages.run_options(f"label-{teacher_set}", label.LabelOptions(teacher=teachers, transfer=transfer,
                                                                           out=out, quiet=True),
                                [transfer, *teachers], out, label.label)
        return out

    def run_sets(self, teacher_sets: List[str]) -> Dict:
        self.convert()
        self.prepare()
        minilm = self.teacher()
        self.transfer(minilm)  # augment + the MiniLM labelling, shared with small_students.py
        result: Dict = {"data": self.counts(), "teachers": {}, "students": {}}
        backbones = sorted({b for s in teacher_sets for b in s.split("+")}, key=list(BACKBONES).index)
        folders = {}
        for backbone in backbones:
            folders[backbone] = self.backbone_teacher(backbone)
            stage = "teacher" if backbone == "minilm" else f"teacher-{backbone}"
            entry = system_entry(self.evaluate(f"teacher-{backbone}" if backbone != "minilm" else "teacher",
                                               folders[backbone]), folders[backbone], self.stages.seconds(stage))
            result["teachers"][backbone] = {"backbone": BACKBONES[backbone], **entry}
        for teacher_set in teacher_sets:
            labelled = self.labelled(teacher_set, [folders[b] for b in teacher_set.split("+")],
                                     self.root / "transfer")
            suffix = "" if teacher_set == "minilm" else f"-{teacher_set}"
            student = self.student(DEFAULT_PRESET, labelled, suffix)
            entry = system_entry(self.evaluate(f"{DEFAULT_PRESET}{suffix}", student), student,
                                 self.stages.seconds(f"distil-{DEFAULT_PRESET}{suffix}"))
            entry.update(student_facts(student), labelling=labelling_facts(labelled))
            teacher_score = self.teacher_set_scores(teacher_set, result["teachers"], folders)
            entry["teacher"] = teacher_score
            entry["x_teacher"] = round(entry["test"]["accuracy"] / teacher_score["test"]["accuracy"], 4)
            entry["dev_x_teacher"] = round(entry["dev"]["accuracy"] / teacher_score["dev"]["accuracy"], 4)
            result["students"][teacher_set] = entry
        return result

    def teacher_set_scores(self, teacher_set: str, teachers: Dict, folders: Dict[str, Path]) -> Dict:
        """What a student of `teacher_set` is compared with: the single teacher's scores, or
        the ensemble's own (averaged logits) on test and dev."""
        if "+" not in teacher_set:
            return {split: teachers[teacher_set][split] for split in ("test", "dev")}
        members = [folders[b] for b in teacher_set.split("+")]
        scores = {}
        for split in ("test", "dev"):
            out = self.root / "metrics" / f"ensemble-{teacher_set}-{split}.json"
            self.stages.run(f"evaluate-ensemble-{teacher_set}-{split}", {"teachers": [str(m) for m in members]},
                            [*members, self.file(split)], out,
                            lambda s=split, o=out: write_json(o, ensemble_scores(members, self.file(s))))
            scores[split] = json.loads(out.read_text())
        return scores


def write_json(path: Path, content: Dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(results_json(content))


def labelling_facts(labelled: Path) -> Dict:
    meta = json.loads((labelled / "label.json").read_text())
    return {key: meta.get(key) for key in ("rows", "seconds", "sentences_per_s", "rows_resumed")}


def ensemble_scores(teachers: List[Path], data: Path) -> Dict:
    """Test or dev scores of averaged teacher logits, as `rasa-kd label` averages them."""
    import numpy as np

    from rasa_kd.transfer.label import load_teachers
    from rasa_kd.evaluation.metrics import classification_scores
    from rasa_kd.formats.nlu_yaml import read_examples
    examples = read_examples(data)
    texts = [e.text for e in examples]
    loaded = load_teachers(teachers)
    logits = np.mean([t.predict_logits(texts) for t in loaded], axis=0)
    labels = loaded[0].labels
    return classification_scores([e.intent for e in examples], [labels[i] for i in logits.argmax(axis=1)])


def markdown(results: Dict) -> str:
    lines = ["# Teacher choice: backbone and ensembles, and the default student each one teaches", "",
             f"Produced by `benchmarks/teachers.py` on this machine ({results['machine']['cores']} cores, "
             f"{results['machine']['cpu']}). Teachers: `rasa-kd teacher` defaults, best epoch on dev. Students: the "
             f"default preset ({DEFAULT_PRESET}, int8 deployed unless it lost dev accuracy) distilled on the same "
             "transfer set labelled by each teacher set (an ensemble averages the logits). Sets are compared on "
             "dev; test is reported only. Labelling: sentences/s over the whole transfer set, all cores.", ""]
    for task, result in results["tasks"].items():
        lines += [task_heading(task, result["data"]), "", "| teacher | parameters | test acc | dev acc | training minutes | ms/example | "
                      "labelling sentences/s |", "|---|---|---|---|---|---|---|"]
        for backbone, entry in result["teachers"].items():
            labelling = result["students"].get(backbone, {}).get("labelling", {})
            rate = f"{labelling['sentences_per_s']:,.0f}" if labelling.get("sentences_per_s") else ""
            lines.append(f"| {entry['backbone']} | {entry['parameters'].get('total', 0):,} | "
                         f"{entry['test']['accuracy']:.4f} | {entry['dev']['accuracy']:.4f} | "
                         f"{entry['train_minutes'] or 0:.1f} | {entry['latency_ms_batch1']:.2f} | {rate} |")
        lines += ["", "| teacher set | teacher test / dev | student test | x teacher | dev x teacher | "
                      "student size MB | labelling minutes | distil minutes |", "|---|---|---|---|---|---|---|---|"]
        for teacher_set, entry in result["students"].items():
            teacher = entry["teacher"]
            labelling = entry["labelling"]
            lines.append(f"| {teacher_set} | {teacher['test']['accuracy']:.4f} / {teacher['dev']['accuracy']:.4f} | "
                         f"{entry['test']['accuracy']:.4f} | {entry['x_teacher']:.3f} | {entry['dev_x_teacher']:.3f} | "
                         f"{entry['size_bytes'] / 1e6:.2f} | {(labelling.get('seconds') or 0) / 60:.1f} | "
                         f"{entry['train_minutes'] or 0:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=["sara"])
    parser.add_argument("--teachers", nargs="+", choices=TEACHER_SETS, default=list(TEACHER_SETS),
                        help="teacher sets, in the order to run them (an ensemble joins backbones with +)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "small")
    parser.add_argument("--latency-examples", type=int, default=200)
    args = parser.parse_args(argv)
    from rasa_kd.errors import UserError

    results = results_so_far("teachers", "benchmarks/teachers.py")
    for task in args.tasks:
        started = time.time()
        try:
            result = TeacherRun(task, args.work, args.latency_examples).run_sets(args.teachers)
        except UserError as error:
            print(f"error: {task}: {error}", file=sys.stderr)
            return 2
        old = results["tasks"].get(task, {})
        for key in ("teachers", "students"):
            result[key] = {**old.get(key, {}), **result[key]}
        result["run_seconds"] = round(time.time() - started, 1)
        results["tasks"][task] = result
        publish("teachers", results, markdown(results))  # after every task: an interrupted run keeps it
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
