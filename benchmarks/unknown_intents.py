"""Unknown intents and calibration, teacher vs default student vs Rasa's DIET, on Sara.

    .venv/bin/python benchmarks/unknown_intents.py [--unknown-sentences 1000]

Needs, from earlier benchmarks: the Sara teacher and split of `benchmarks/small_students.py`
(benchmarks/work/small/sara), the calibrated default student of `benchmarks/calibration.py`
(benchmarks/work/calibration/sara/student), and the DIET model of `benchmarks/rasa_train.py
--task sara` (trained on the same Sara training examples). Unknown sentences: a seeded sample of
MTOD English test sentences (weather, alarms, reminders: intents Sara never saw; Sara's own
out_of_scope intent is a known intent here, as it is in the assistant).

Per model, with its top confidence (DIET's from Rasa's intent_ranking, nlu_fallback left out):
Sara test accuracy and ECE (15 bins); the FallbackClassifier threshold chosen on Sara dev for
precision 0.95 and the share of test it keeps; how well the top confidence tells Sara test from
the unknown sentences (AUROC, false-positive rate at 95 % true-positive rate) and the share of
unknown sentences under the threshold. Writes benchmarks/results/unknown_intents.json and .md.
"""
import argparse
import json
import random
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine, publish, versions  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work"
PRECISION = 0.95
OUT_OF_SCOPE = "out_of_scope"  # Sara's intent for what the assistant does not handle


class DietModel:
    """A Rasa model behind the `labels` / `predict` interface of rasa_kd.evaluation.evaluate's models:
    a probability row per text from Rasa's intent_ranking (ranks Rasa does not report are 0)."""

    def __init__(self, model: Path, labels: Sequence[str]):
        self.model, self.labels, self.kind = model, list(labels), "rasa-diet"

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        from rasa_runner import parse_messages

        index = {label: i for i, label in enumerate(self.labels)}
        rows = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for row, parsed in enumerate(parse_messages(self.model, texts)):
            for item in parsed["intent_ranking"]:
                if item["name"] in index:
                    rows[row, index[item["name"]]] = item["confidence"]
        return rows


def unknown_file(work: Path, n: int, seed: int = 0) -> Path:
    from rasa_kd.nlu_data.convert import convert
    from rasa_kd.formats.nlu_yaml import read_examples, write_examples

    path = work / f"mtod-en-unknown-{n}.yml"
    if not path.exists():
        converted = WORK / "scale" / "converted"
        if not (converted / "test.yml").exists():
            converted = work / "mtod-en"
            convert("mtod", SHARED / "mtod", converted, force=True, lang="en")
        examples = read_examples(converted / "test.yml")
        write_examples(path, random.Random(seed).sample(examples, min(n, len(examples))))
    return path


def model_result(model, dev: Path, test: Path, unknown: Path) -> Dict:
    from rasa_kd.evaluation import calibration
    from rasa_kd.evaluation.evaluate import separation
    from rasa_kd.formats.nlu_yaml import read_examples

    def gold_of(examples: List) -> List[int]:
        index = {label: i for i, label in enumerate(model.labels)}
        return [index.get(e.intent, -1) for e in examples]

    dev_examples, test_examples = read_examples(dev), read_examples(test)
    dev_probabilities = model.predict([e.text for e in dev_examples])
    test_probabilities = model.predict([e.text for e in test_examples])
    threshold = calibration.fallback_threshold(dev_probabilities, gold_of(dev_examples), PRECISION)["threshold"]
    confidences, correct = calibration.top_and_correct(test_probabilities, gold_of(test_examples))
    kept = calibration.kept_at(test_probabilities, gold_of(test_examples), threshold)
    unknown_probabilities = model.predict([e.text for e in read_examples(unknown)])
    unknown_top = unknown_probabilities.argmax(axis=1)
    out_of_scope = np.array([model.labels[i] == OUT_OF_SCOPE for i in unknown_top])
    under = unknown_probabilities.max(axis=1) < (-np.inf if threshold is None else threshold)
    return {"accuracy": round(float(correct.mean()), 4),
            "ece": round(calibration.expected_calibration_error(test_probabilities, gold_of(test_examples)), 4),
            "mean_confidence": round(float(confidences.mean()), 4), "threshold_on_dev": threshold,
            "kept_on_test": kept["kept"], "precision_on_test": kept["precision"],
            "unknown": {"data": str(unknown), **separation(test_probabilities, unknown_probabilities, threshold),
                        "predicted_out_of_scope": round(float(out_of_scope.mean()), 4),
                        "caught": round(float((out_of_scope | under).mean()), 4)}}


def markdown(result: Dict) -> str:
    lines = ["# Unknown intents and calibration on Sara: teacher, default student, DIET", "",
             f"Produced by `benchmarks/unknown_intents.py` ({result['machine']['cores']} cores). Known: Sara test "
             f"({result['known_n']} sentences, Rasa-deduplicated); unknown: {result['unknown_n']} MTOD English test "
             "sentences (weather, alarms, reminders). Threshold: the FallbackClassifier threshold chosen on Sara dev "
             f"for precision {PRECISION}.", "",
             "| model | accuracy | ECE | threshold (dev) | test kept | test precision | AUROC known vs unknown | "
             "FPR at 95 % TPR | unknown under threshold | unknown as out_of_scope | unknown caught |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["models"].items():
        u = r["unknown"]
        threshold = "none" if r["threshold_on_dev"] is None else f"{r['threshold_on_dev']:.3f}"
        under = "" if u["under_threshold"] is None else f"{u['under_threshold']:.1%}"
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['ece']:.4f} | {threshold} | {r['kept_on_test']:.1%} | "
                     f"{r['precision_on_test'] or ''} | **{u['auroc']:.4f}** | {u['fpr_at_95_tpr']:.4f} | {under} | "
                     f"{u['predicted_out_of_scope']:.1%} | {u['caught']:.1%} |")
    auroc = {name: r["unknown"]["auroc"] for name, r in result["models"].items()}
    lines += ["", "Caught: predicted out_of_scope or under the threshold (FallbackClassifier), i.e. not answered "
                  "as one of Sara's own intents.",
              "", f"Student AUROC {auroc['student'] - auroc['teacher']:+.4f} against the teacher's, "
                  f"{auroc['student'] - auroc['diet']:+.4f} against DIET's."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unknown-sentences", type=int, default=1000)
    args = parser.parse_args(argv)
    from rasa_kd.cli import quiet_environment
    from rasa_kd.evaluation.evaluate import open_model
    from rasa_kd.formats.nlu_yaml import read_examples

    quiet_environment()
    small, work = WORK / "small" / "sara", WORK / "unknown-intents"
    paths = {"teacher": small / "teacher", "student": WORK / "calibration" / "sara" / "student",
             "diet": WORK / "rasa-train" / "sara" / "models" / "diet.tar.gz"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        sys.exit(f"unknown_intents: {', '.join(missing)} not found (run small_students.py, calibration.py and "
                 f"rasa_train.py --task sara first)")
    work.mkdir(parents=True, exist_ok=True)
    unknown = unknown_file(work, args.unknown_sentences)
    student = open_model(paths["student"])
    models = {"teacher": open_model(paths["teacher"]), "student": student,
              "diet": DietModel(paths["diet"], student.labels)}
    dev, test = small / "data" / "dev.yml", small / "data" / "test.yml"
    result = {"benchmark": "benchmarks/unknown_intents.py", "machine": machine(), "versions": versions(),
              "paths": {k: str(v) for k, v in paths.items()}, "dev": str(dev), "test": str(test),
              "unknown_file": str(unknown), "models": {}}
    for name, model in models.items():
        print(f"== {name}", flush=True)
        result["models"][name] = model_result(model, dev, test, unknown)
        print(json.dumps(result["models"][name]), flush=True)
    result["known_n"] = len(read_examples(test))
    result["unknown_n"] = result["models"]["student"]["unknown"]["n"]
    publish("unknown_intents", result, markdown(result))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
