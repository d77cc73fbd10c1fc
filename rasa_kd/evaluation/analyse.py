"""`rasa-kd analyse`: what the student kept of its teacher, and where it did not, as a report.

    rasa-kd analyse --teacher build/teacher --student build/student --data build/data/test.yml \\
        [--transfer build/transfer-labelled] [--out build/analysis-test]

Both models predict --data (the student with the runtime it deploys, or --runtime).
Written to --out (default: analysis-<data stem> beside the student package; replaced
only with --force), all or nothing:

  report.md          the report a person reads: the scores side by side, per-intent F1
                     of teacher and student (largest student losses first), the test
                     sentences where they disagree with both confidences, the pictures
                     below, and the intents with the thinnest transfer set
  analysis.json      the same numbers, every disagreement included
  confusion-teacher.png, confusion-student.png   confusion matrices, each row (gold intent)
                     normalised to the share of its sentences
  confidence.png     top-confidence histograms, right and wrong predictions apart

The transfer set (--transfer, from `rasa-kd augment` or `label`) is counted per intent:
a labelled set by the teacher's top label of each sentence (what the student was shown),
an unlabelled one by the intent of the training sentence each row came from.
"""
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, precision_recall_fscore_support

from rasa_kd.errors import UserError
from rasa_kd.evaluation.evaluate import open_model
from rasa_kd.evaluation.metrics import classification_scores
from rasa_kd.formats import transfer_set
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.outputs import atomic_output_dir, check_output_dir
from rasa_kd.formats.student_package import RUNTIMES
from rasa_kd.options import option

logger = logging.getLogger(__name__)

SHOWN_DISAGREEMENTS = 40
THIN_INTENTS = 10


def predictions(model, texts: Sequence[str]) -> Dict:
    """Top label and its confidence per text."""
    probabilities = model.predict(texts)
    top = probabilities.argmax(axis=1)
    return {"labels": [model.labels[i] for i in top],
            "confidences": [float(probabilities[row, i]) for row, i in enumerate(top)]}


def per_intent_f1(gold: Sequence[str], teacher: Sequence[str], student: Sequence[str]) -> List[Dict]:
    """One row per gold intent: support, teacher and student precision/recall/F1; largest student loss first."""
    intents = sorted(set(gold))
    rows = {intent: {"intent": intent} for intent in intents}
    for name, predicted in (("teacher", teacher), ("student", student)):
        precision, recall, f1, support = precision_recall_fscore_support(
            gold, predicted, labels=intents, zero_division=0)
        for i, intent in enumerate(intents):
            rows[intent].update({"support": int(support[i]), f"{name}_precision": round(float(precision[i]), 4),
                                 f"{name}_recall": round(float(recall[i]), 4), f"{name}_f1": round(float(f1[i]), 4)})
    return sorted(rows.values(), key=lambda row: (row["student_f1"] - row["teacher_f1"], row["intent"]))


def disagreements(texts, gold, teacher: Dict, student: Dict) -> List[Dict]:
    """The sentences the two models label differently, the ones the teacher got right first."""
    rows = [{"text": text, "gold": gold[i], "teacher": teacher["labels"][i],
             "teacher_confidence": round(teacher["confidences"][i], 4), "student": student["labels"][i],
             "student_confidence": round(student["confidences"][i], 4)}
            for i, text in enumerate(texts) if teacher["labels"][i] != student["labels"][i]]
    return sorted(rows, key=lambda row: (row["teacher"] != row["gold"], -row["teacher_confidence"]))


def transfer_counts(path: Path) -> Dict[str, object]:
    """Transfer sentences per intent (see the module docstring for how each row is assigned)."""
    required = (transfer_set.PARENT, transfer_set.INTENT)
    labelled = transfer_set.LOGITS in transfer_set.open_transfer(path, require=required).dataset.column_names and (
        Path(path) / transfer_set.LABELS_FILE).is_file()
    opened = transfer_set.open_transfer(path, labelled=labelled, require=required)
    dataset = opened.dataset
    if labelled:
        labels = opened.labels
        tops = np.asarray(dataset[transfer_set.LOGITS], dtype=np.float32).argmax(axis=1)
        return {"counted_by": "teacher's top label", "counts": dict(Counter(labels[i] for i in tops))}
    intents, parents = dataset[transfer_set.INTENT], dataset[transfer_set.PARENT]
    counts = Counter(intents[parent] for parent in parents if parent != transfer_set.NO_PARENT)
    return {"counted_by": "intent of the source sentence", "counts": dict(counts),
            "unassigned": sum(parent == transfer_set.NO_PARENT for parent in parents)}


def thin_intents(counts: Dict[str, int], intents: Sequence[str], f1_rows: List[Dict]) -> List[Dict]:
    """The intents with the fewest transfer sentences, with their share of the median and the student's F1."""
    student_f1 = {row["intent"]: row["student_f1"] for row in f1_rows}
    per_intent = {intent: int(counts.get(intent, 0)) for intent in intents}
    median = float(np.median(list(per_intent.values()))) or 1.0
    thinnest = sorted(per_intent.items(), key=lambda item: (item[1], item[0]))[:THIN_INTENTS]
    return [{"intent": intent, "transfer_sentences": count, "of_median": round(count / median, 2),
             "student_f1": student_f1.get(intent)} for intent, count in thinnest]


def confusion_picture(gold, predicted, labels: Sequence[str], path: Path, title: str) -> None:
    matplotlib.use("Agg")

    side = min(4 + 0.35 * len(labels), 30)
    figure, axis = plt.subplots(figsize=(side, side), dpi=100)
    # rows normalised to recall, so that small intents' confusions show beside the big ones
    ConfusionMatrixDisplay.from_predictions(gold, predicted, labels=list(labels), ax=axis, colorbar=False,
                                            normalize="true", values_format=".2f", cmap="Blues",
                                            xticks_rotation="vertical", include_values=len(labels) <= 25)
    axis.set_title(f"{title} (rows: gold intent, share of its sentences)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def confidence_picture(gold, teacher: Dict, student: Dict, path: Path) -> None:
    matplotlib.use("Agg")

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100, sharey=True)
    for axis, (name, result) in zip(axes, (("teacher", teacher), ("student", student))):
        right = [c for c, label, g in zip(result["confidences"], result["labels"], gold) if label == g]
        wrong = [c for c, label, g in zip(result["confidences"], result["labels"], gold) if label != g]
        axis.hist([right, wrong], bins=np.linspace(0, 1, 21), label=["right", "wrong"], stacked=True)
        axis.set(title=f"{name}: top confidence", xlabel="confidence")
        axis.legend(loc="upper left")
    axes[0].set_ylabel("test sentences")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def analyse(teacher_path: Path, student_path: Path, data: Path, out: Optional[Path] = None,
            transfer_path: Optional[Path] = None, runtime: str = "auto", force: bool = False) -> Dict:
    """Write the report folder (see the module docstring); returns analysis.json's content."""
    student_path, data = Path(student_path), Path(data)
    out = Path(out) if out else student_path.parent / f"analysis-{data.stem}"
    check_output_dir(out, force)
    examples = read_examples(data)
    teacher_model, student_model = open_model(teacher_path), open_model(student_path, runtime)
    if teacher_model.kind != "teacher" or student_model.kind == "teacher":
        raise UserError(f"--teacher takes a teacher folder and --student a student package "
                        f"(got {teacher_model.kind} and {student_model.kind})")
    texts, gold = [e.text for e in examples], [e.intent for e in examples]
    teacher, student = predictions(teacher_model, texts), predictions(student_model, texts)
    f1_rows = per_intent_f1(gold, teacher["labels"], student["labels"])
    report = {"teacher": str(teacher_path), "student": str(student_path), "student_kind": student_model.kind,
              "data": str(data), "n": len(texts),
              "scores": {"teacher": classification_scores(gold, teacher["labels"]),
                         "student": classification_scores(gold, student["labels"])},
              "agreement": round(float(np.mean([a == b for a, b in zip(teacher["labels"], student["labels"])])), 4),
              "per_intent": f1_rows, "disagreements": disagreements(texts, gold, teacher, student)}
    if transfer_path:
        counted = transfer_counts(transfer_path)
        report["transfer"] = {"path": str(transfer_path), **counted,
                              "thinnest": thin_intents(counted["counts"], sorted(set(gold)), f1_rows)}
    intents = sorted(set(gold) | set(teacher["labels"]) | set(student["labels"]))
    with atomic_output_dir(out, force=force) as tmp:
        for name, result in (("teacher", teacher), ("student", student)):
            confusion_picture(gold, result["labels"], intents, tmp / f"confusion-{name}.png",
                              f"{name} on {data.name}")
        confidence_picture(gold, teacher, student, tmp / "confidence.png")
        (tmp / "analysis.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        (tmp / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def markdown(report: Dict) -> str:
    scores = report["scores"]
    lines = [f"# Teacher vs student on {Path(report['data']).name}", "",
             f"Teacher `{report['teacher']}`, student `{report['student']}` ({report['student_kind']}), "
             f"{report['n']} sentences (Rasa-deduplicated).", "",
             "| | accuracy | macro-F1 | MCC |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | {s['mcc']:.4f} |" for name, s in scores.items()]
    lines += ["", f"The student agrees with the teacher on {report['agreement']:.1%} of the sentences; it keeps "
                  f"{scores['student']['accuracy'] / max(scores['teacher']['accuracy'], 1e-9):.3f}x of the "
                  f"teacher's accuracy.", "", "## Per-intent F1 (largest student loss first)", "",
              "| intent | support | teacher F1 | student F1 | difference |", "|---|---|---|---|---|"]
    lines += [f"| {r['intent']} | {r['support']} | {r['teacher_f1']:.3f} | {r['student_f1']:.3f} | "
              f"{r['student_f1'] - r['teacher_f1']:+.3f} |" for r in report["per_intent"]]
    shown = report["disagreements"][:SHOWN_DISAGREEMENTS]
    lines += ["", f"## Where they disagree ({len(report['disagreements'])} sentences"
                  f"{f'; the first {len(shown)} shown, all in analysis.json' if len(shown) < len(report['disagreements']) else ''})",
              "", "Teacher right first, most confident first.", "",
              "| sentence | gold | teacher (confidence) | student (confidence) |", "|---|---|---|---|"]
    lines += [f"| {cell(r['text'])} | {r['gold']} | {mark(r['teacher'], r['gold'])} ({r['teacher_confidence']:.2f}) | "
              f"{mark(r['student'], r['gold'])} ({r['student_confidence']:.2f}) |" for r in shown]
    lines += ["", "## Pictures", "", "![teacher confusion matrix](confusion-teacher.png)",
              "![student confusion matrix](confusion-student.png)", "![top-confidence histograms](confidence.png)"]
    if "transfer" in report:
        transfer = report["transfer"]
        lines += ["", f"## Thinnest intents in the transfer set (counted by {transfer['counted_by']})", "",
                  f"Transfer set `{transfer['path']}`: {sum(transfer['counts'].values()):,} sentences counted.", "",
                  "| intent | transfer sentences | of the median | student F1 on this data |", "|---|---|---|---|"]
        lines += [f"| {r['intent']} | {r['transfer_sentences']} | {r['of_median']:.2f} | "
                  f"{'-' if r['student_f1'] is None else format(r['student_f1'], '.3f')} |" for r in transfer["thinnest"]]
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def mark(label: str, gold: str) -> str:
    return f"**{label}**" if label == gold else label


@dataclass
class AnalyseOptions:
    """`rasa-kd analyse`'s options; see the module docstring."""

    teacher: Path = option(help="teacher folder (from `rasa-kd teacher`)")
    student: Path = option(help="student package (from `rasa-kd distil`)")
    data: Path = option(help="Rasa NLU YAML with gold intents (e.g. test.yml)")
    transfer: Optional[Path] = option(None, "transfer set folder: report the intents it covers thinly")
    out: Optional[Path] = option(None, "report folder (default: analysis-<data stem> beside --student)")
    runtime: str = option("auto", "the student's runtime (auto: what the package deploys)", choices=RUNTIMES)
    force: bool = option(False, "replace an existing report folder")


def analyse_from_options(options: AnalyseOptions) -> Dict:
    report = analyse(options.teacher, options.student, options.data, options.out, options.transfer, options.runtime,
                     options.force)
    out = options.out or Path(options.student).parent / f"analysis-{Path(options.data).stem}"
    scores = report["scores"]
    logger.info(f"teacher {scores['teacher']['accuracy']:.4f}, student {scores['student']['accuracy']:.4f} accuracy "
                f"on {report['n']} sentences; {len(report['disagreements'])} disagreements; "
                f"report: {out / 'report.md'}")
    return report
