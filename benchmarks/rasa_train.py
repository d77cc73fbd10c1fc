"""`rasa train nlu` with the student distilled inside it, against Rasa's default DIET pipeline.

    .venv/bin/python benchmarks/rasa_train.py --task demo          # data/nlu.yml, 20 % held out
    .venv/bin/python benchmarks/rasa_train.py --task sara          # Sara's train/test split (~30 min)

In one run, on the same training data: `rasa train nlu` with config.yml's in-graph
student (no `student:`), the same command again with nothing changed (Rasa's cache),
`rasa test nlu` on the held-out test file, and Rasa's default DIET pipeline trained
and tested the same way; with --cross-validation K also `rasa test nlu
--cross-validation --folds K` with the in-graph student; and `rasa-kd pipeline` with its
defaults on the same training file and test file (the same recipe outside Rasa). Writes
benchmarks/results/rasa_train.json (one entry per task); each section is written when
it finishes, and a re-run measures only the sections missing there (or those in --redo).
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import results_json  # noqa: E402
SHARED = ROOT.parent / "shared" / "data"

IN_GRAPH_CONFIG = """recipe: default.v1
language: en
assistant_id: rasa-train-benchmark
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies: []
"""


def task_files(task: str, work: Path):
    """(train file, test file) for the task."""
    from rasa_kd.nlu_data.convert import convert
    from rasa_kd.nlu_data.split import split_nlu

    if task == "sara":
        converted = work / "converted"
        if not (converted / "test.yml").exists():
            convert("sara", SHARED / "sara", converted, force=True)
        return converted / "train.yml", converted / "test.yml"
    data = work / "data"
    if not (data / "test.yml").exists():
        split_nlu(ROOT / "data" / "nlu.yml", data, test_fraction=0.2, seed=42)
    return data / "train.yml", data / "test.yml"


def timed(function, *args, **kwargs):
    started = time.time()
    result = function(*args, **kwargs)
    return result, round(time.time() - started, 1)


def cv_summary(report_dir: Path, log: Path) -> dict:
    """The test folds' pooled scores (Rasa's intent_report.json over every fold's test part)
    and, from the verbose log, Rasa's per-fold mean (std) lines."""
    report = json.loads((report_dir / "intent_report.json").read_text())
    fold_lines = [line.split("rasa.nlu.test")[-1].strip(" -") for line in log.read_text(errors="replace").splitlines()
                  if "rasa.nlu.test" in line and "(" in line and ":" in line]
    return {"pooled_test": {"accuracy": report["accuracy"], "macro_f1": report["macro avg"]["f1-score"],
                            "n": int(report["macro avg"]["support"])}, "fold_summary": fold_lines}


def rasa_section(name: str, config: Path, train: Path, test: Path, work: Path) -> dict:
    """`rasa train nlu` (timed) and `rasa test nlu` of one config."""
    import rasa_runner

    model, seconds = timed(rasa_runner.train_nlu, config, train, work / "models", name, cwd=work)
    scores = rasa_runner.test_nlu(model, test, work / "results" / name, cwd=work)
    return {"train_seconds": seconds, "test": scores, "model_bytes": model.stat().st_size}


def cross_validation_section(folds: int, config: Path, train: Path, work: Path) -> dict:
    import rasa_runner

    out, log = work / "cross-validation", work / "cv.log"
    _, seconds = timed(rasa_runner.run_rasa, ["test", "nlu", "--cross-validation", "--folds", str(folds), "-v",
                                              "--config", str(config), "--nlu", str(train), "--out", str(out)],
                       work, log)
    return {"folds": folds, "seconds": seconds, "log": str(log), "report": str(out), **cv_summary(out, log)}


def pipeline_section(train: Path, test: Path, work: Path) -> dict:
    """`rasa-kd pipeline` with every default on the same training file (its dev share split off the
    same way the component splits it), evaluated on the same test file: the same recipe outside Rasa."""
    from rasa_kd.pipeline import PipelineOptions, run_pipeline

    result, seconds = timed(run_pipeline, PipelineOptions(nlu=train, out=work / "pipeline", test=test, quiet=True))
    return {"seconds": seconds, **{name: {"accuracy": metrics["scores"]["accuracy"], "n": metrics["scores"]["n"],
                                          "kind": metrics["kind"]}
                                   for name, metrics in result["metrics"].items()}}


SECTIONS = ("student", "diet", "retrain", "cross_validation", "pipeline")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("demo", "sara"), default="demo")
    parser.add_argument("--cross-validation", type=int, default=3, help="folds (0: skip)")
    parser.add_argument("--redo", nargs="+", choices=SECTIONS, default=[],
                        help="sections to measure again (the others already in the results are kept)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "rasa-train")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "rasa_train.json")
    args = parser.parse_args(argv)
    import rasa_runner
    from rasa_kd.cli import quiet_environment

    quiet_environment()
    work = args.work / args.task
    work.mkdir(parents=True, exist_ok=True)
    train, test = task_files(args.task, work)
    configs = {"student": work / "student-config.yml", "diet": work / "diet-config.yml"}
    configs["student"].write_text(IN_GRAPH_CONFIG)
    configs["diet"].write_text(rasa_runner.DIET_CONFIG)
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    result = {**results.get(args.task, {}), "task": args.task, "train": str(train), "test": str(test)}
    steps = {name: (lambda name=name: rasa_section(name, configs[name], train, test, work)) for name in configs}
    steps["retrain"] = lambda: {"unchanged_seconds": timed(rasa_runner.train_nlu, configs["student"], train,
                                                           work / "models", "student-again", cwd=work)[1]}
    if args.cross_validation:
        steps["cross_validation"] = lambda: cross_validation_section(args.cross_validation, configs["student"],
                                                                     train, work)
    steps["pipeline"] = lambda: pipeline_section(train, test, work)
    for name, step in steps.items():
        if name in result and name not in args.redo:
            continue
        print(f"== {args.task}: {name}", flush=True)
        result[name] = step()
        result["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results[args.task] = result
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(results_json(results))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
