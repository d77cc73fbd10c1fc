"""`make demo`: the whole rasa-kd path on the demo assistant "Bean Counter" (config.yml, domain.yml, data/).

1. `rasa-kd pipeline --nlu data/nlu.yml --test tests/demo_nlu_test.yml --out build/`: teacher,
   student (defaults: preset balanced, int8), both scored on the demo's held-out test set (143
   sentences written apart from data/, 98 entities in 76 of them)
2. `rasa train nlu` on the training split: the student pipeline (the student extracts the
   entities too, as the data has them) and Rasa's default DIET pipeline; `rasa test nlu` of both on
   the held-out test set (intents and, with entities, Rasa's entity report), in-process parse latency
3. the assistant itself: plain `rasa train` with config.yml (the student is distilled inside Rasa's
   training), `rasa run` on localhost, a short conversation over the REST channel, server stopped
4. result tables (intents; entities when the data has them), the conversation with what NLU
   understood of each message (POST /model/parse), and the stage timings
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # rasa_runner: `rasa train`/`rasa test`/`rasa run`, as a user runs them
BUILD = ROOT / "build"
TEST = ROOT / "tests" / "demo_nlu_test.yml"  # outside data/, which `rasa train` reads whole
CONVERSATION = ["hi there", "can I get a large oat latte please", "what time do you close on sunday",
                "where is your shop in Lisbon?", "is this a real person?", "thanks, bye"]


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
                    "--test", str(TEST.relative_to(ROOT)), "--out", "build"], check=True, cwd=ROOT)


def row(name, scores, latency_ms, size_mb):
    return f"| {name} | {scores['accuracy']:.3f} | {scores['macro_f1']:.3f} | {latency_ms:.2f} | {size_mb:.1f} |"


def main() -> int:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.chdir(ROOT)
    import rasa_runner

    timings = {}
    timed(timings, "rasa-kd pipeline", run_pipeline)
    train, test = BUILD / "data" / "train.yml", TEST
    models = BUILD / "models"
    configs = {"student": BUILD / "student-config.yml", "diet": BUILD / "diet-config.yml"}
    from rasa_kd.pipeline import has_entities, recommended_snippet

    entities = has_entities(train)
    # what rasa-kd pipeline printed: data with entities gets one student for intents and entities
    configs["student"].write_text(rasa_runner.whole_config(recommended_snippet((BUILD / "student").resolve(), train)))
    configs["diet"].write_text(rasa_runner.DIET_CONFIG)
    from rasa_kd.formats.nlu_yaml import read_examples

    texts = [example.text for example in read_examples(test)]
    results = {}
    for name, label in (("student", "student pipeline"), ("diet", "DIET pipeline")):
        model = timed(timings, f"rasa train nlu ({label})", rasa_runner.train_nlu, configs[name], train, models,
                      f"{name}-pipeline")
        scores = timed(timings, f"rasa test nlu ({label})", rasa_runner.test_nlu, model, test,
                       BUILD / "results" / name)
        latency = timed(timings, f"parse latency ({label})", rasa_runner.parse_latency, model, texts)
        results[name] = (scores, latency, rasa_runner.size_mb(model))
    assistant = timed(timings, "rasa train (the assistant, student distilled inside)", rasa_runner.train_assistant,
                      Path("config.yml"), Path("domain.yml"), Path("data"), models, "assistant")
    conversation = timed(timings, "rasa run + REST conversation", talk, assistant)
    print_table(results, len(texts))
    if entities:
        print_entity_table(results)
    print("\nconversation with the assistant (rasa run, POST /webhooks/rest/webhook):")
    for text, parsed, replies in conversation:
        print(f"  you: {text}")
        print(f"       ({understood(parsed)})")
        for reply in replies or ["(no reply)"]:
            print(f"  bot: {reply}")
    print(f"\nthe assistant's model: {assistant} ({rasa_runner.size_mb(assistant):.1f} MB; all `rasa run` needs)")
    print("\nstage timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"total: {sum(timings.values()) / 60:.1f} min")
    return 0


def talk(model: Path):
    import rasa_runner

    with rasa_runner.RasaServer(model, BUILD / "models" / "assistant-server.log",
                                credentials=ROOT / "credentials.yml") as server:
        return [(text, server.parse(text), server.say("demo-user", text)) for text in CONVERSATION]


def understood(parsed) -> str:
    """What NLU made of a message: its intent and entities, as /model/parse returns them."""
    entities = ", ".join(f"{e['entity']}={e['value']}" for e in parsed.get("entities") or [])
    return f"intent {parsed['intent']['name']} {parsed['intent']['confidence']:.2f}" + (f"; {entities}" if entities
                                                                                       else "")


def print_table(results, n_test: int) -> None:
    teacher = json.loads((BUILD / "metrics-teacher.json").read_text())
    student = json.loads((BUILD / "metrics-student.json").read_text())
    print("\n| system | accuracy | macro-F1 | latency ms/example | size MB |")
    print("|---|---|---|---|---|")
    for name, metrics in (("teacher", teacher), (f"student, {student['kind']}", student)):
        print(row(f"{name} (rasa-kd evaluate)", metrics["scores"], metrics["latency_ms_batch1"],
                  metrics["size_bytes"] / 1e6))
    for name, label in (("student", "Rasa + StudentIntentClassifier"), ("diet", "Rasa default DIET pipeline")):
        scores, latency, size = results[name]
        print(row(f"{label} (rasa test nlu, parse)", scores, latency["median_ms"], size))
    ratio = results["student"][1]["median_ms"] / results["diet"][1]["median_ms"]
    gap = teacher["scores"]["accuracy"] - student["scores"]["accuracy"]
    print(f"\nstudent: {abs(gap) * 100:.1f} points {'below' if gap >= 0 else 'above'} the teacher; student pipeline "
          f"parse latency = {ratio:.2f} x DIET pipeline's (held-out test set: {n_test} messages)")


def print_entity_table(results) -> None:
    """Rasa's entity report (token level, micro average over the entity labels) of each pipeline's extractor."""
    print("\n| pipeline | entity extractor | entity micro-F1 | macro-F1 |")
    print("|---|---|---|---|")
    for name, label in (("student", "Rasa + StudentIntentClassifier"), ("diet", "Rasa default DIET pipeline")):
        for extractor, report in results[name][0]["entities"].items():
            print(f"| {label} | {extractor} | {report['micro_f1'] or 0:.3f} | {report['macro_f1'] or 0:.3f} |")


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    from rasa_kd.errors import UserError

    try:
        sys.exit(main())
    except UserError as error:
        print(f"demo: {error}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as error:
        print(f"demo: {' '.join(map(str, error.cmd[:3]))} failed with exit status {error.returncode} "
              f"(its message is above); fix it and re-run `make demo` to resume", file=sys.stderr)
        sys.exit(1)
