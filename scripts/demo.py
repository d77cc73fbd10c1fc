"""`make demo`: the whole rasa-kd path on the embedded demo assistant (data/nlu.yml).

1. `rasa-kd pipeline --nlu data/nlu.yml --out build/`  (split, teacher, augment, label, distil, evaluate)
2. `rasa train nlu` with config.yml (our StudentIntentClassifier) and with Rasa's default DIET pipeline
3. `rasa test nlu` of both on the held-out split, in-process parse latency of both
4. a result table, and three example messages parsed by the student pipeline
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
EXAMPLES = ["can I get a large oat latte please", "what time do you close on sunday", "is this a real person?"]


def timed(timings, name, function, *args, **kwargs):
    print(f"\n== {name}", flush=True)
    started = time.time()
    result = function(*args, **kwargs)
    timings[name] = time.time() - started
    print(f"== {name}: {timings[name]:.1f} s", flush=True)
    return result


def run_pipeline() -> None:
    """The defaults a user gets: preset balanced, its transfer-set size rule, int8 when it holds."""
    subprocess.run([str(Path(sys.executable).parent / "rasa-kd"), "pipeline", "--nlu", "data/nlu.yml",
                    "--out", "build"], check=True, cwd=ROOT)


def row(name, scores, latency_ms, size_mb):
    return f"| {name} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} | {latency_ms:.2f} | {size_mb:.1f} |"


def main() -> int:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.chdir(ROOT)
    from rasa_kd import rasa_runner

    timings = {}
    timed(timings, "rasa-kd pipeline", run_pipeline)
    train, test = BUILD / "data" / "train.yml", BUILD / "data" / "test.yml"
    diet_config = BUILD / "diet-config.yml"
    diet_config.write_text(rasa_runner.DIET_CONFIG)
    models = BUILD / "models"
    student_model = timed(timings, "rasa train nlu (student pipeline)", rasa_runner.train_nlu,
                          Path("config.yml"), train, models, "student-pipeline")
    diet_model = timed(timings, "rasa train nlu (DIET pipeline)", rasa_runner.train_nlu,
                       diet_config, train, models, "diet-pipeline")
    from rasa_kd.nlu_io import read_examples

    texts = [example.text for example in read_examples(test)]
    results = {}
    for name, model in (("student", student_model), ("diet", diet_model)):
        scores = timed(timings, f"rasa test nlu ({name} pipeline)", rasa_runner.test_nlu, model, test,
                       BUILD / "results" / name)
        latency = timed(timings, f"parse latency ({name} pipeline)", rasa_runner.parse_latency, model, texts)
        results[name] = (scores, latency, rasa_runner.size_mb(model))
    teacher = json.loads((BUILD / "metrics-teacher.json").read_text())
    student = json.loads((BUILD / "metrics-student.json").read_text())

    print("\n| system | accuracy | macro-F1 | latency ms/example | size MB |")
    print("|---|---|---|---|---|")
    for name, metrics in (("teacher", teacher), ("student", student)):
        print(row(f"{name} (rasa-kd evaluate)", metrics["scores"], metrics["latency_ms_batch1"],
                  metrics["size_bytes"] / 1e6))
    for name, label in (("student", "Rasa + StudentIntentClassifier"), ("diet", "Rasa default DIET pipeline")):
        scores, latency, size = results[name]
        print(row(f"{label} (rasa test nlu, parse)", scores, latency["median_ms"], size))
    ratio = results["student"][1]["median_ms"] / results["diet"][1]["median_ms"]
    print(f"\nstudent pipeline parse latency = {ratio:.2f} x DIET pipeline's (test set: {len(texts)} messages)")

    from rasa_kd.rasa_runner import parse_messages

    print("\nexample messages (student pipeline):")
    for text, parsed in zip(EXAMPLES, parse_messages(student_model, EXAMPLES)):
        print(f"  {text!r:45} -> {parsed['intent']['name']} ({parsed['intent']['confidence']:.2f})")
    print("\nstage timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"total: {sum(timings.values()) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        print(f"demo: {' '.join(map(str, error.cmd[:3]))} failed with exit status {error.returncode} "
              f"(its message is above); fix it and re-run `make demo` to resume", file=sys.stderr)
        sys.exit(1)
