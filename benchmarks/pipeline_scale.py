"""How long the default `rasa-kd pipeline` takes on an assistant of about 10,000 examples.

    .venv/bin/python benchmarks/pipeline_scale.py            # MTOD English, ~35 min on 2 cores

The data: MTOD's English eval + test files (12,802 rows, 12 intents; its English
train file is not in ../shared/data) as one NLU file: 11,189 unique utterances, which
`rasa-kd pipeline` splits 80/10/10 (8,952 training examples; the transfer-set rule
gives the same 40k sentences as for 10,000, only the teacher's epochs are about 10 %
shorter). Everything else is the pipeline's defaults:
the default preset, its transfer-set size rule and early stopping. The pipeline's own
stage cache makes a re-run resume (benchmarks/work/scale/).

Writes benchmarks/results/pipeline_scale.json and .md: the time of every stage, and the
teacher's and the student's test scores.
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine, results_json, versions  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def assistant_file(work: Path) -> Path:
    """MTOD English eval + test as one Rasa NLU file."""
    from rasa_kd.nlu_data.convert import convert
    from rasa_kd.formats.nlu_yaml import read_examples, write_examples

    nlu = work / "mtod-en.yml"
    if not nlu.exists():
        converted = work / "converted"
        convert("mtod", SHARED / "mtod", converted, force=True, lang="en")
        write_examples(nlu, read_examples(converted / "dev.yml") + read_examples(converted / "test.yml"))
    return nlu


def markdown(result) -> str:
    metrics = result["metrics"]
    lines = ["# `rasa-kd pipeline` defaults on a 10,000-example assistant", "",
             f"Produced by `benchmarks/pipeline_scale.py` ({result['machine']['cores']} cores, "
             f"{result['machine']['cpu']}): MTOD English eval + test ({result['examples']:,} examples, "
             f"{result['intents']} intents) split 80/10/10 by the pipeline; train {result['train']:,} examples. "
             "Every option at its default.", "",
             f"Total: **{result['total_minutes']:.1f} minutes**. Test accuracy: teacher "
             f"{metrics['teacher']['accuracy']:.4f}, student {metrics['student']['accuracy']:.4f} "
             f"({metrics['student']['accuracy'] / metrics['teacher']['accuracy']:.3f}x).", "",
             "| stage | minutes |", "|---|---|"]
    lines += [f"| {name} | {seconds / 60:.1f} |" for name, seconds in result["stage_seconds"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "scale")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from rasa_kd.cli import quiet_environment
    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.pipeline import PipelineOptions, run_pipeline

    quiet_environment()
    args.work.mkdir(parents=True, exist_ok=True)
    nlu = assistant_file(args.work)
    examples = read_examples(nlu)
    started = time.time()
    outcome = run_pipeline(PipelineOptions(nlu=nlu, out=args.work / "pipeline", test_fraction=0.1,
                                           dev_fraction=0.1, quiet=True))
    result = {"benchmark": "benchmarks/pipeline_scale.py", "machine": machine(), "versions": versions(),
              "examples": len(examples), "intents": len({e.intent for e in examples}),
              "train": len(read_examples(args.work / "pipeline" / "data" / "train.yml")),
              "stage_seconds": outcome["timings"], "run_seconds": round(time.time() - started, 1),
              "total_minutes": round(sum(outcome["timings"].values()) / 60, 2),
              "metrics": {name: metrics["scores"] for name, metrics in outcome["metrics"].items()},
              "student": json.loads((Path(outcome["student"]) / "student.json").read_text())["recipe"],
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "pipeline_scale.json").write_text(results_json(result))
    (args.results / "pipeline_scale.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
