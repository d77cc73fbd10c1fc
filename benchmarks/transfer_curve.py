"""Transfer-set quality on Sara: the size curve and the mix of rules and originals.

    .venv/bin/python benchmarks/transfer_curve.py                          # every point
    .venv/bin/python benchmarks/transfer_curve.py --points 10k 20k 50k     # some points

Runs in the work folder of benchmarks/small_students.py (benchmarks/work/small/sara)
and reuses its data and MiniLM teacher stages. Adds (each a resumable stage):

  augment-curve   one rules transfer set of the largest size (200k new sentences)
  label-curve     the teacher's logits for all of it (`rasa-kd label`)
  distil-<point>  the default preset's student (balanced) on the first N new sentences
                  (`--transfer-limit`: the originals, then rule sentences in the order
                  they were made), exported and evaluated on dev and test

Points: sizes 0 (the 2,706 originals only), 10k, 20k, 50k, 100k, 200k new sentences;
mixes at 50k: the originals left out (`--originals-repeat 0`), the originals 5 times,
gold intents of the originals mixed into the loss (`--hard-weight 0.5`).
Compute minutes of a point = its share of augmenting and labelling (N / 200k of the
stages' time) + distillation. Points are compared on dev; test is reported only.

Writes benchmarks/results/transfer_curve.json and .md after every point, so an
interrupted run keeps what finished and a re-run resumes at the next point.
"""
import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from small_students import TaskRun, student_facts, system_entry, task_heading  # noqa: E402
from report import options_text  # noqa: E402
from run import publish, results_so_far  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.students.presets import DEFAULT_PRESET  # noqa: E402

LARGEST = 200_000
# point -> (new rule sentences, DistilOptions over the default preset's)
POINTS: Dict[str, tuple] = {
    "0": (0, {}),
    "10k": (10_000, {}),
    "20k": (20_000, {}),
    "50k": (50_000, {}),
    "100k": (100_000, {}),
    "200k": (200_000, {}),
    "50k-no-originals": (50_000, {"originals_repeat": 0}),
    "50k-originals-x5": (50_000, {"originals_repeat": 5}),
    "50k-hard-0.5": (50_000, {"hard_weight": 0.5}),
}


class CurveRun(TaskRun):
    def __init__(self, work: Path, latency_examples: int, largest: int = LARGEST):
        super().__init__("sara", work, [DEFAULT_PRESET], latency_examples)
        self.largest = largest

    def curve_transfer(self, teacher: Path) -> Path:
        from rasa_kd.transfer import augment, label

        transfer, labelled = self.root / "transfer-curve", self.root / "transfer-curve-labelled"
        options = augment.AugmentOptions(train=self.file("train"), out=transfer, size=self.largest, quiet=True,
                                         exclude=[self.file("dev"), self.file("test")])
        self.stages.run_options("augment-curve", options, [self.data], transfer, augment.augment)
        self.stages.run_options("label-curve", label.LabelOptions(teacher=[teacher], transfer=transfer,
                                                                  out=labelled, quiet=True),
                                [transfer, teacher], labelled, label.label)
        return labelled

    def point(self, name: str, labelled: Path, teacher: Dict) -> Dict:
        new_sentences, values = POINTS[name]
        new_sentences = min(new_sentences, self.largest)
        originals = self.n_train()
        suffix = f"-curve-{name}"
        student = self.student(DEFAULT_PRESET, labelled, suffix, transfer_limit=originals + new_sentences, **values)
        distil_seconds = self.stages.seconds(f"distil-{DEFAULT_PRESET}{suffix}") or 0
        entry = system_entry(self.evaluate(f"curve-{name}", student), student, distil_seconds)
        entry.update(student_facts(student), new_sentences=new_sentences, options=values,
                     x_teacher=round(entry["test"]["accuracy"] / teacher["test"]["accuracy"], 4),
                     dev_x_teacher=round(entry["dev"]["accuracy"] / teacher["dev"]["accuracy"], 4))
        share = new_sentences / self.largest
        making = sum(self.stages.seconds(s) or 0 for s in ("augment-curve", "label-curve")) * share
        entry["compute_minutes"] = round((making + distil_seconds) / 60, 2)
        return entry

    def run_points(self, points: List[str], publish_point) -> Dict:
        self.convert()
        self.prepare()
        teacher_path = self.teacher()
        labelled = self.curve_transfer(teacher_path)
        teacher = system_entry(self.evaluate("teacher", teacher_path), teacher_path, self.stages.seconds("teacher"))
        result = {"data": self.counts(), "teacher": teacher, "transfer": transfer_facts(labelled),
                  "stage_seconds": {s: self.stages.seconds(s) for s in ("augment-curve", "label-curve")},
                  "points": {}}
        for name in points:
            result["points"][name] = self.point(name, labelled, teacher)
            publish_point(result)
        return result


def transfer_facts(labelled: Path) -> Dict:
    meta = json.loads((labelled / "label.json").read_text())
    return {key: meta.get(key) for key in ("rows", "seconds", "sentences_per_s")}


def pareto(points: Dict) -> List[str]:
    """Points no other point beats on dev accuracy for the same or less compute."""
    front, best = [], -1.0
    for name, entry in sorted(points.items(), key=lambda item: (item[1]["compute_minutes"],
                                                                -item[1]["dev"]["accuracy"])):
        if entry["dev"]["accuracy"] > best:
            front.append(name)
            best = entry["dev"]["accuracy"]
    return front


def markdown(results: Dict) -> str:
    lines = ["# Transfer-set quality on Sara: size and the mix of rules and originals", "",
             f"Produced by `benchmarks/transfer_curve.py` on this machine ({results['machine']['cores']} cores, "
             f"{results['machine']['cpu']}). Teacher: MiniLM-L6 (`rasa-kd teacher` defaults). Student: the default "
             f"preset ({DEFAULT_PRESET}) on the originals and the first N rule sentences of one transfer set; "
             "deployed runtime (int8 ONNX unless it lost dev accuracy). Compute = the point's share of augmenting "
             "and labelling + distillation, minutes on this CPU. Points are compared on dev; test is reported only. "
             "**Bold**: best dev accuracy for its compute (no point is better on dev for the same or less).", ""]
    for task, result in results["tasks"].items():
        teacher = result["teacher"]
        lines += [task_heading(task, result["data"]), "",
                  f"Teacher: test {teacher['test']['accuracy']:.4f}, dev {teacher['dev']['accuracy']:.4f}. "
                  f"Transfer set: {result['transfer']['rows']:,} sentences labelled at "
                  f"{result['transfer']['sentences_per_s'] or 0:,.0f} sentences/s.", "",
                  "| point | new sentences | options | dev acc | test acc | x teacher | epochs run (best) | "
                  "distil minutes | compute minutes |", "|---|---|---|---|---|---|---|---|---|"]
        front = set(pareto(result["points"]))
        for name, entry in result["points"].items():
            label = f"**{name}**" if name in front else name
            options = options_text(entry["options"]) or "preset"
            lines.append(f"| {label} | {entry['new_sentences']:,} | {options} | {entry['dev']['accuracy']:.4f} | "
                         f"{entry['test']['accuracy']:.4f} | {entry['x_teacher']:.3f} | {entry['epochs_run']} "
                         f"({entry['best_epoch']}) | {entry['train_minutes'] or 0:.1f} | "
                         f"{entry['compute_minutes']:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", choices=list(POINTS), default=list(POINTS),
                        help="points to run, in this order (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "small")
    parser.add_argument("--largest", type=int, default=LARGEST,
                        help="new sentences in the shared transfer set (default 200k; smaller for a trial)")
    parser.add_argument("--latency-examples", type=int, default=200)
    args = parser.parse_args(argv)
    from rasa_kd.errors import UserError

    results = results_so_far("transfer_curve", "benchmarks/transfer_curve.py")
    old = results["tasks"].get("sara", {})
    started = time.time()

    def publish_point(result: Dict) -> None:
        points = {**old.get("points", {}), **result["points"]}
        merged = {**result, "points": {name: points[name] for name in POINTS if name in points},
                  "run_seconds": round(time.time() - started, 1)}
        results["tasks"]["sara"] = merged
        publish("transfer_curve", results, markdown(results))

    try:
        CurveRun(args.work, args.latency_examples, args.largest).run_points(args.points, publish_point)
    except UserError as error:
        print(f"error: sara: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
