"""Teacher benchmark on the Sara split: quality levers for `rasa-kd teacher`.

    python benchmarks/teacher.py [--levers mean,mean_lr2e-4,...] [--work /tmp/kd-teacher-bench]

Converts ../shared/data/sara (rasa_kd.nlu_data.convert), fine-tunes one teacher per lever
(skipping teachers already in WORK/teachers/, so a re-run resumes), scores each on
dev and test, measures labelling throughput (length-sorted batches of 64, max length
64, all cores) on the train+dev+test sentences, scores 2-teacher ensembles (averaged
logits) and writes benchmarks/results/teacher_sara.json and a markdown table.

Levers: pooling (mean vs the [CLS] pooler), learning rate (1e-4, 2e-4), epochs
(6 vs 10, with early stopping on dev), label smoothing 0.1, seeds, and 2-teacher
ensembles. `--train-threads 1` trains faster when another process shares 2 cores.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from run import results_json  # noqa: E402

from rasa_kd.nlu_data import convert
from rasa_kd.teachers import fine_tune  # noqa: E402
from rasa_kd.evaluation.metrics import classification_scores  # noqa: E402
from rasa_kd.formats.nlu_yaml import read_examples  # noqa: E402
from rasa_kd.distributed import available_cores  # noqa: E402
from rasa_kd.teachers.folder import TeacherFolder, predict_logits  # noqa: E402

SARA = ROOT.parent / "shared" / "data" / "sara"
RESULTS = ROOT / "benchmarks" / "results" / "teacher_sara.json"

# lever name -> TeacherSettings overrides (everything else: the defaults of `rasa-kd teacher`)
LEVERS = {
    "mean_lr2e-4": dict(pooling="mean", lr=2e-4, epochs=6),
    "mean_lr1e-4_seed2": dict(pooling="mean", lr=1e-4, epochs=6, seed=2),
    "cls_baseline": dict(pooling="cls", lr=1e-4, epochs=8, patience=100),
    "mean_lr2e-4_ls0.1": dict(pooling="mean", lr=2e-4, epochs=6, label_smoothing=0.1),
    "mean_lr2e-4_e10": dict(pooling="mean", lr=2e-4, epochs=10),
    "mean_lr2e-4_seed2": dict(pooling="mean", lr=2e-4, epochs=6, seed=2),
}
ENSEMBLES = {
    "ensemble_mean_lr2e-4_2seeds": ("mean_lr2e-4", "mean_lr2e-4_seed2"),
    "ensemble_mean_lr2e-4+lr1e-4_seed2": ("mean_lr2e-4", "mean_lr1e-4_seed2"),
    "ensemble_mean+cls": ("mean_lr2e-4", "cls_baseline"),
}


def scores(labels, logits, examples):
    predicted = [labels[i] for i in logits.argmax(axis=1)]
    return classification_scores([e.intent for e in examples], predicted)


def measure(folder: Path, data: dict):
    loaded = TeacherFolder(folder)
    out = {"logits": {name: loaded.predict_logits([e.text for e in ex]) for name, ex in data.items()}}
    texts = [e.text for ex in data.values() for e in ex]
    started = time.time()
    predict_logits(loaded.classifier, loaded.tokenizer, texts, 64, batch_size=64)
    out["label_sentences_per_s"] = len(texts) / (time.time() - started)
    out["load_average"] = round(os.getloadavg()[0], 2)  # other processes on the cores slow this down
    out["labels"] = loaded.labels
    return out


def row(name, result):
    return (f"| {name} | {result['dev']['accuracy']:.4f} | {result['dev']['micro_f1']:.4f} | "
            f"{result['test']['accuracy']:.4f} | {result['test']['micro_f1']:.4f} | "
            f"{result.get('train_seconds', 0):.0f} | {result['label_sentences_per_s']:.0f} | "
            f"{result.get('parameters', 0) / 1e6:.1f}M |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", default=",".join(LEVERS), help="comma-separated levers to run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kd-teacher-bench"))
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--train-threads", type=int, help="torch threads for training (default: all cores; "
                        "1 is faster when another process shares the cores)")
    parser.add_argument("--label-threads", type=int, help="torch threads for labelling (default: all cores)")
    args = parser.parse_args()
    import torch

    label_threads = args.label_threads or available_cores()
    torch.set_num_threads(label_threads)
    sara = args.work / "sara"
    if not (sara / "test.yml").exists():
        convert.convert("sara", str(SARA), sara)
    data = {name: read_examples(sara / f"{name}.yml") for name in ("dev", "test")}
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["levers"] = {k: v for k, v in results.get("levers", {}).items() if k in LEVERS or k in ENSEMBLES}
    logits = {}
    for name in args.levers.split(","):
        folder = args.work / "teachers" / name
        settings = fine_tune.TeacherSettings(**LEVERS[name])
        if not (folder / "metrics.json").exists():
            print(f"== {name}: training {settings}", flush=True)
            fine_tune.train_teacher(sara / "train.yml", sara / "dev.yml", args.model, folder, settings, force=True,
                                  threads=args.train_threads)
            torch.set_num_threads(label_threads)
        metrics = json.loads((folder / "metrics.json").read_text())
        measured = measure(folder, data)
        logits[name] = measured
        result = {"settings": metrics["settings"], "best_epoch": metrics["best_epoch"],
                  "train_seconds": metrics["train_seconds"], "parameters": metrics["parameters"],
                  "label_sentences_per_s": round(measured["label_sentences_per_s"], 1),
                  "load_average_during_labelling": measured["load_average"], "label_threads": label_threads,
                  **{split: scores(measured["labels"], measured["logits"][split], data[split]) for split in data}}
        results["levers"][name] = result
        print(row(name, result), flush=True)
        write(results)
    for name, members in ENSEMBLES.items():
        if not all(m in logits for m in members):
            continue
        labels = logits[members[0]]["labels"]
        result = {"members": list(members),
                  "train_seconds": sum(results["levers"][m]["train_seconds"] for m in members),
                  "parameters": sum(results["levers"][m]["parameters"] for m in members),
                  "label_sentences_per_s": round(1 / sum(1 / logits[m]["label_sentences_per_s"] for m in members), 1)}
        for split in data:
            mean = np.mean([logits[m]["logits"][split] for m in members], axis=0)
            result[split] = scores(labels, mean, data[split])
        results["levers"][name] = result
        print(row(name, result), flush=True)
    results["dataset"] = {"name": "sara", "dev": len(data["dev"]), "test": len(data["test"])}
    write(results)
    print("\n| teacher | dev acc | dev micro-F1 | test acc | test micro-F1 | train s | label sent/s | params |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in results["levers"].items():
        print(row(name, result))
    return 0


def write(results):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(results_json(results, indent=2))


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
