"""Distillation benchmark on Sara (Sučík 2020): teacher vs BiLSTM and small-BERT students.

Stages (each skipped when its output exists, so a re-run resumes):
  convert  ../shared/data/sara -> WORK/data (train/dev/test.yml; the thesis's split)
  teacher  `rasa-kd teacher` (default backbone minilm) on train, dev for model selection
  augment  `rasa-kd augment --method rules|lm|rules,lm` on train (dev and test excluded)
  label    `rasa-kd label`: teacher logits for every transfer sentence
  distil   every recipe in VARIANTS (BiLSTM on GloVe 6B 50-d words or on the teacher's
           wordpieces, small BERT with 5 layers, hidden 204; transfer-set size, epochs, loss)
  pick     the best BiLSTM and the best small BERT by dev accuracy
  export   `rasa-kd export --onnx` for the two picked students
  evaluate `rasa-kd evaluate` on test: teacher, the picked students with PyTorch and ONNX

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
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import results_json  # noqa: E402
DIET_ACCURACY = 0.803
# These recipes predate the presets (rasa_kd/students/presets.py): whole vocabularies at the pretrained width,
# 300-unit BiLSTMs, every epoch run. LEGACY restores those defaults so that the results reproduce.
LEGACY = ["--no-prune-vocab", "--embedding-dim", "0", "--patience", "0", "--hidden-size", "300"]
WORDS = [*LEGACY, "--student", "bilstm", "--vocab", "words", "--vectors", "glove50"]
WORDPIECES = [*LEGACY, "--student", "bilstm", "--vocab", "wordpieces"]
# Recipes tried on dev (name -> `rasa-kd distil` options); the best BiLSTM and the best BERT by dev
# accuracy are evaluated in full. Transfer-set size is a lever through --transfer-limit (the
# originals, then rule sentences in the order they were made).
VARIANTS = {
    "bilstm-glove-20k-e10": [*WORDS, "--embedding-mode", "multichannel", "--transfer-limit", "20000", "--epochs", "10"],
    "bilstm-glove-100k-e3": [*WORDS, "--embedding-mode", "multichannel", "--epochs", "3"],
    "bert-20k-e6": [*LEGACY, "--hidden-size", "204", "--student", "bert", "--transfer-limit", "20000", "--epochs", "6"],
    "bilstm-wordpieces-20k-e6": [*WORDPIECES, "--embedding-mode", "multichannel", "--transfer-limit", "20000",
                                 "--epochs", "6"],
    "bilstm-glove-100k-e6": [*WORDS, "--embedding-mode", "multichannel", "--epochs", "6"],
    "bilstm-wordpieces-h150-20k-e6": [*WORDPIECES, "--embedding-mode", "multichannel", "--hidden-size", "150",
                                      "--transfer-limit", "20000", "--epochs", "6"],
    # the teacher's width (MiniLM: 384, 12 heads) so that 3 of its 6 layers can initialise the student
    "bert-teacher-l3-20k-e3": [*LEGACY, "--student", "bert", "--hidden-size", "384", "--heads", "12", "--intermediate", "1536",
                               "--layers", "3", "--init-from-teacher", "--transfer-limit", "20000", "--epochs", "3"],
    "bert-teacher-l2-20k-e3": [*LEGACY, "--student", "bert", "--hidden-size", "384", "--heads", "12", "--intermediate", "1536",
                               "--layers", "2", "--init-from-teacher", "--transfer-limit", "20000", "--epochs", "3"],
    # 2 layers are fast enough for 10x; more epochs and the hidden-state loss to win back accuracy
    "bert-teacher-l2-20k-e6-hw1": [*LEGACY, "--student", "bert", "--hidden-size", "384", "--heads", "12", "--intermediate",
                                   "1536", "--layers", "2", "--init-from-teacher", "--hidden-weight", "1",
                                   "--transfer-limit", "20000", "--epochs", "6"],
}

def rasa_kd(*argv) -> None:
    """Run one rasa-kd command in a child process (fresh memory, same environment)."""
    command = [sys.executable, "-m", "rasa_kd.cli", *map(str, argv)]
    print("\n$ rasa-kd " + " ".join(map(str, argv)), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def stage(done: Path, timings: Dict, name: str, *argv) -> None:
    """Run a rasa-kd command unless `done` exists; its time is kept in WORK/timings.json."""
    if done.exists():
        print(f"[skip] {done} exists", flush=True)
        return
    started = time.time()
    rasa_kd(*argv)
    timings[name] = round(time.time() - started, 1)


def prepare_transfer(args, timings: Dict) -> Dict[str, Path]:
    work, data = args.work, args.work / "data"
    if not (data / "test.yml").exists():
        from rasa_kd.nlu_data.convert import convert

        convert("sara", args.source, data)
    teacher, transfer, labelled = work / "teacher", work / f"transfer-{args.augment}", work / f"labelled-{args.augment}"
    stage(teacher, timings, "teacher", "teacher", "--train", data / "train.yml", "--dev", data / "dev.yml",
          "--model", args.teacher_model, "--out", teacher, "--seed", args.seed)
    augment = ["augment", "--method", args.augment, "--train", data / "train.yml", "--exclude", data / "dev.yml",
               "--exclude", data / "test.yml", "--out", transfer, "--seed", args.seed]
    stage(transfer, timings, "augment", *augment, *(["--size", args.size] if args.size else []))
    stage(labelled, timings, "label", "label", "--teacher", teacher, "--transfer", transfer, "--out", labelled)
    return {"teacher": teacher, "labelled": labelled, "dev": data / "dev.yml", "test": data / "test.yml"}


def train_variants(args, paths: Dict, timings: Dict) -> Dict[str, Dict]:
    """Distil every variant (dev picks each one's best epoch; test is scored once, for the report)."""
    tuning = {}
    for name in args.variants:
        out = args.work / f"student-{name}"
        stage(out, timings, f"distil {name}", "distil", "--transfer", paths["labelled"], "--dev", paths["dev"],
              "--test", paths["test"], "--out", out, "--seed", args.seed, *VARIANTS[name])
        manifest = json.loads((out / "student.json").read_text())
        recipe = manifest["recipe"]
        tuning[name] = {"options": VARIANTS[name], "path": str(out), "kind": manifest["architecture"],
                        "vocab": manifest["tokenizer"]["kind"], "transfer_sentences": recipe["transfer_sentences"],
                        "epochs": recipe["epochs"], "best_epoch": recipe["best_epoch"],
                        "training_seconds": recipe["training_seconds"], "dev": manifest["metrics"]["dev"]["accuracy"],
                        "test": manifest["metrics"]["test"]["accuracy"], "dev_history": recipe.get("dev_history")}
    return tuning


def best_variants(tuning: Dict) -> Dict[str, str]:
    """The variant with the best dev accuracy per architecture (ties: the faster to train)."""
    best = {}
    for kind in ("bilstm", "bert"):
        names = [n for n, t in tuning.items() if t["kind"] == kind]
        if names:
            best[kind] = max(names, key=lambda n: (tuning[n]["dev"], -tuning[n]["training_seconds"]))
    return best


def evaluate_all(paths: Dict, best: Dict[str, str], tuning: Dict, work: Path, timings: Dict) -> Dict:
    """Teacher; every variant with ONNX (the deployed path: accuracy and speed); the picked ones with PyTorch too."""
    metrics_dir = work / "metrics"
    results = {}
    runs = [("teacher", paths["teacher"], [])]
    for name in tuning:
        student = work / f"student-{name}"
        stage(student / "model.onnx", timings, f"export {name}", "export", "--model", student, "--onnx",
              "--data", paths["test"])
        runs += ([(name, student, [])] if name in best.values() else []) + [(f"{name} (onnx)", student, ["--onnx"])]
    for name, model, extra in runs:
        out = metrics_dir / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}.json"
        if not out.exists():
            rasa_kd("evaluate", "--model", model, "--data", paths["test"], "--out", out, *extra)
        results[name] = json.loads(out.read_text())
    return results


def summarise(results: Dict, best: Dict[str, str], timings: Dict, tuning: Dict) -> Dict:
    teacher = results["teacher"]["scores"]["accuracy"]

    def fastest(name):
        return min(results[n]["latency_ms_batch1"] for n in (name, f"{name} (onnx)") if n in results)

    targets = {}
    if "bilstm" in best:
        name = best["bilstm"]
        accuracy = results[name]["scores"]["accuracy"]
        targets["bilstm_vs_teacher"] = {"student": name, "ratio": round(accuracy / teacher, 4), "target": 0.98,
                                        "met": accuracy >= 0.98 * teacher}
        targets["bilstm_vs_diet"] = {"accuracy": accuracy, "diet": DIET_ACCURACY, "met": accuracy > DIET_ACCURACY}
        targets["bilstm_latency_ms"] = {"value": fastest(name), "target": 1.0, "met": fastest(name) <= 1.0}
        whole = sum(timings.get(k, 0) for k in ("augment", "label")) + tuning[name]["training_seconds"]
        targets["sara_distil_run_minutes"] = {"augment_label_bilstm": round(whole / 60, 1), "target": 20,
                                              "met": whole <= 20 * 60}
    if "bert" in best:
        name = best["bert"]
        accuracy = results[name]["scores"]["accuracy"]
        targets["bert_vs_teacher"] = {"student": name, "ratio": round(accuracy / teacher, 4), "target": 0.98,
                                      "met": accuracy >= 0.98 * teacher}
        targets["bert_latency_ms"] = {"value": fastest(name), "target": 5.0, "met": fastest(name) <= 5.0}
    teacher_latency = results["teacher"]["latency_ms_batch1"]
    for kind, name in best.items():
        targets[f"{kind}_speedup_vs_teacher"] = {"value": round(teacher_latency / fastest(name), 1), "target": 10,
                                                 "met": teacher_latency / fastest(name) >= 10}
    limits = {"bilstm": 1.0, "bert": 5.0}
    for kind in best:
        # variants that meet every target of their kind at once (accuracy, latency cap, 10x the teacher)
        passing = [n for n, t in tuning.items() if t["kind"] == kind and f"{n} (onnx)" in results
                   and results[f"{n} (onnx)"]["scores"]["accuracy"] >= 0.98 * teacher
                   and fastest(f"{n} (onnx)") <= limits[kind] and teacher_latency / fastest(f"{n} (onnx)") >= 10]
        targets[f"{kind}_all_targets_at_once"] = {"variants": passing, "met": bool(passing)}
    return targets


def markdown(results: Dict, targets: Dict, tuning: Dict, args) -> str:
    teacher = results["teacher"]["scores"]["accuracy"]
    lines = [f"Sara test set (987 rows, {results['teacher']['scores']['n']} unique after Rasa's dedupe); transfer set "
             f"from `{args.augment}` augmentation; {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPU cores.", "",
             "| model | accuracy | × teacher | micro-F1 | macro-F1 | MCC | parameters (embedding) | size MB | "
             "ms/example, batch 1 | sentences/s, batch 64 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        s, p = m["scores"], m["parameters"]
        lines.append(f"| {name} | {s['accuracy']:.3f} | {s['accuracy'] / teacher:.3f} | {s['micro_f1']:.3f} | "
                     f"{s['macro_f1']:.3f} | {s['mcc']:.3f} | {p['total'] / 1e6:.2f}M ({p['embedding'] / 1e6:.2f}M) | "
                     f"{m['size_bytes'] / 1e6:.1f} | {m['latency_ms_batch1']:.2f} | {m['sentences_per_second']:,.0f} |")
    lines.append(f"| Rasa DIET (default pipeline) | {DIET_ACCURACY:.3f} | {DIET_ACCURACY / teacher:.3f} | | | | | | | |")
    lines += ["", "Recipes tried (selection by dev accuracy; test shown for the record):", "",
              "| variant | options | transfer sentences | epochs (best) | dev | test | training min |",
              "|---|---|---|---|---|---|---|"]
    for name, t in tuning.items():
        options = " ".join(o for o in t["options"] if o not in ("--student",))
        lines.append(f"| {name} | `{options}` | {t['transfer_sentences']:,} | {t['epochs']:g} ({t['best_epoch']}) | "
                     f"{t['dev']:.3f} | {t['test']:.3f} | {t['training_seconds'] / 60:.1f} |")
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
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="student recipes to distil (default all)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "distil_sara.json")
    args = parser.parse_args()
    for key, value in {"RASA_TELEMETRY_ENABLED": "false", "USE_TF": "0", "TRANSFORMERS_NO_TF": "1"}.items():
        os.environ.setdefault(key, value)
    timings_file = args.work / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    try:
        paths = prepare_transfer(args, timings)
        tuning = train_variants(args, paths, timings)
        best = best_variants(tuning)
        results = evaluate_all(paths, best, tuning, args.work, timings)
    finally:
        args.work.mkdir(parents=True, exist_ok=True)
        timings_file.write_text(json.dumps(timings, indent=1) + "\n")
    targets = summarise(results, best, timings, tuning)
    report = {"dataset": "sara", "augment": args.augment, "size": args.size, "teacher_model": args.teacher_model,
              "diet_accuracy": DIET_ACCURACY, "best": best, "results": results, "tuning": tuning,
              "targets": targets, "stage_seconds": timings, "cpu_cores": os.cpu_count()}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(results_json(report, indent=2))
    table = markdown(results, targets, tuning, args)
    args.results.with_suffix(".md").write_text(table)
    print("\n" + table)
    print(f"results: {args.results} and {args.results.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
