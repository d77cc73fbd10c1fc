"""Distillation benchmark on Sara (Sučík 2020): teacher vs BiLSTM and small-BERT students.

Stages (each skipped when its output exists, so a re-run resumes):
  convert  ../shared/data/sara -> WORK/data (train/dev/test.yml; the thesis's split)
  teacher  `rasa-kd teacher` (default backbone minilm) on train, dev for model selection
  augment  `rasa-kd augment --method rules|lm|rules,lm` on train (dev and test excluded)
  label    `rasa-kd label`: teacher logits for every transfer sentence
  distil   students: bilstm-wordpieces (multichannel teacher wordpieces), bilstm-glove
           (GloVe 6B 50-d words, multichannel), bert (5 layers, hidden 204)
  export   `rasa-kd export --onnx` per student
  evaluate `rasa-kd evaluate` on test: teacher, each student with PyTorch and ONNX

Writes benchmarks/results/distil_sara.json and distil_sara.md: a table with the
teacher, the students and Rasa's default DIET pipeline (0.803 test accuracy,
measured on the same split), plus the targets: best BiLSTM >= 0.98x teacher and
> 0.803, small-BERT >= 0.98x teacher, BiLSTM <= 1 ms/example and small-BERT
<= 5 ms/example at batch 1 (the faster of PyTorch and ONNX).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DIET_ACCURACY = 0.803
STUDENTS = {
    "bilstm-wordpieces": ["--student", "bilstm", "--vocab", "wordpieces", "--embedding-mode", "multichannel"],
    "bilstm-glove": ["--student", "bilstm", "--vocab", "words", "--vectors", "glove50", "--embedding-mode", "multichannel"],
    "bert": ["--student", "bert"],
}


def rasa_kd(*argv) -> None:
    """Run one rasa-kd command in a child process (fresh memory, same environment)."""
    command = [sys.executable, "-m", "rasa_kd.cli", *map(str, argv)]
    print("\n$ rasa-kd " + " ".join(map(str, argv)), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def stage(done: Path, *argv) -> None:
    if done.exists():
        print(f"[skip] {done} exists", flush=True)
        return
    rasa_kd(*argv)


def run_stages(args) -> dict:
    work, data = args.work, args.work / "data"
    if not (data / "test.yml").exists():
        from rasa_kd.convert import convert

        convert("sara", args.source, data)
    teacher, transfer, labelled = work / "teacher", work / f"transfer-{args.augment}", work / f"labelled-{args.augment}"
    stage(teacher, "teacher", "--train", data / "train.yml", "--dev", data / "dev.yml", "--model", args.teacher_model,
          "--out", teacher, "--seed", args.seed)
    augment = ["augment", "--method", args.augment, "--train", data / "train.yml", "--exclude", data / "dev.yml",
               "--exclude", data / "test.yml", "--out", transfer, "--seed", args.seed]
    stage(transfer, *augment, *(["--size", args.size] if args.size else []))
    stage(labelled, "label", "--teacher", teacher, "--transfer", transfer, "--out", labelled)
    timings = {}
    for name in args.students:
        out = work / f"student-{name}-{args.augment}"
        started = time.time()
        stage(out, "distil", "--transfer", labelled, "--dev", data / "dev.yml", "--test", data / "test.yml",
              "--out", out, "--epochs", args.epochs, "--seed", args.seed, *STUDENTS[name])
        stage(out / "model.onnx", "export", "--model", out, "--onnx", "--data", data / "test.yml")
        timings[name] = round(time.time() - started, 1)
    return {"teacher": teacher, "students": {n: work / f"student-{n}-{args.augment}" for n in args.students},
            "test": data / "test.yml", "timings": timings}


def evaluate_all(paths: dict, work: Path) -> dict:
    metrics_dir = work / "metrics"
    results = {}
    runs = [("teacher", paths["teacher"], [])]
    for name, student in paths["students"].items():
        runs += [(name, student, []), (f"{name} (onnx)", student, ["--onnx"])]
    for name, model, extra in runs:
        out = metrics_dir / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}.json"
        rasa_kd("evaluate", "--model", model, "--data", paths["test"], "--out", out, *extra)
        results[name] = json.loads(out.read_text())
    return results


def summarise(results: dict) -> dict:
    teacher = results["teacher"]["scores"]["accuracy"]

    def best(prefix):
        names = [n for n in results if n.startswith(prefix) and "(onnx)" not in n]
        return max(names, key=lambda n: results[n]["scores"]["accuracy"]) if names else None

    def fastest(name):
        return min(results[n]["latency_ms_batch1"] for n in (name, f"{name} (onnx)") if n in results)

    targets = {}
    best_bilstm, bert = best("bilstm"), "bert" if "bert" in results else None
    if best_bilstm:
        accuracy = results[best_bilstm]["scores"]["accuracy"]
        targets["bilstm_vs_teacher"] = {"student": best_bilstm, "ratio": accuracy / teacher, "target": 0.98,
                                        "met": accuracy >= 0.98 * teacher}
        targets["bilstm_vs_diet"] = {"accuracy": accuracy, "diet": DIET_ACCURACY, "met": accuracy > DIET_ACCURACY}
        latency = min(fastest(n) for n in results if n.startswith("bilstm") and "(onnx)" not in n)
        targets["bilstm_latency_ms"] = {"value": latency, "target": 1.0, "met": latency <= 1.0}
    if bert:
        accuracy = results[bert]["scores"]["accuracy"]
        targets["bert_vs_teacher"] = {"ratio": accuracy / teacher, "target": 0.98, "met": accuracy >= 0.98 * teacher}
        targets["bert_latency_ms"] = {"value": fastest(bert), "target": 5.0, "met": fastest(bert) <= 5.0}
    return targets


def markdown(results: dict, targets: dict, augment: str) -> str:
    teacher = results["teacher"]["scores"]["accuracy"]
    lines = [f"Sara test set (987 examples), transfer set from `{augment}` augmentation; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores.", "",
             "| model | accuracy | × teacher | micro-F1 | macro-F1 | MCC | parameters (embedding) | size MB | "
             "ms/example, batch 1 | sentences/s, batch 64 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        s, p = m["scores"], m["parameters"]
        lines.append(f"| {name} | {s['accuracy']:.3f} | {s['accuracy'] / teacher:.3f} | {s['micro_f1']:.3f} | "
                     f"{s['macro_f1']:.3f} | {s['mcc']:.3f} | {p['total'] / 1e6:.2f}M ({p['embedding'] / 1e6:.2f}M) | "
                     f"{m['size_bytes'] / 1e6:.1f} | {m['latency_ms_batch1']:.2f} | {m['sentences_per_second']:,.0f} |")
    lines.append(f"| Rasa DIET (default pipeline) | {DIET_ACCURACY:.3f} | {DIET_ACCURACY / teacher:.3f} | | | | | | | |")
    lines += ["", "Targets:", ""]
    lines += [f"- {name}: {json.dumps({k: v for k, v in t.items() if k != 'met'})} — "
              f"{'met' if t['met'] else 'NOT met'}" for name, t in targets.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "sara", help="raw Sara folder")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "distil_sara",
                        help="work folder (default benchmarks/work/distil_sara; re-running resumes)")
    parser.add_argument("--augment", default="rules", choices=("rules", "lm", "rules,lm"), help="augmentation (rules)")
    parser.add_argument("--size", type=int, help="transfer-set size (default: rasa-kd augment's default)")
    parser.add_argument("--teacher-model", default="minilm", help="teacher backbone (default minilm)")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS),
                        help="students to distil (default all)")
    parser.add_argument("--epochs", type=float, default=10, help="student epochs (default 10)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "distil_sara.json")
    args = parser.parse_args()
    for key, value in {"RASA_TELEMETRY_ENABLED": "false", "USE_TF": "0", "TRANSFORMERS_NO_TF": "1"}.items():
        os.environ.setdefault(key, value)
    paths = run_stages(args)
    results = evaluate_all(paths, args.work)
    targets = summarise(results)
    report = {"dataset": "sara", "augment": args.augment, "size": args.size, "epochs": args.epochs,
              "teacher_model": args.teacher_model, "diet_accuracy": DIET_ACCURACY, "results": results,
              "targets": targets, "distil_seconds": paths["timings"], "cpu_cores": os.cpu_count()}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(results, targets, args.augment)
    args.results.with_suffix(".md").write_text(table)
    print("\n" + table)
    print(f"results: {args.results} and {args.results.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
