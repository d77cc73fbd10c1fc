"""Intents and entities at student speed: whole Rasa NLU pipelines on data with entity annotations.

    .venv/bin/python benchmarks/entities.py                          # mtod-es and rasa-demo, every system
    .venv/bin/python benchmarks/entities.py --tasks mtod-es --systems diet student+crf

Per task (cached stages in benchmarks/work/entities/<task>, so a re-run resumes):
  data, student   as benchmarks/small_students.py: convert (slot spans -> Rasa entities),
                  splits, MiniLM teacher, rules transfer set, the default (balanced) student
                  distilled and exported; the same stage code as `rasa-kd pipeline`
  per system      `rasa train nlu` on train; `rasa test nlu` on test (Rasa's own intent
                  report and per-extractor entity report: token-level micro-F1 over the
                  entity labels); in-process `Agent.parse_message` latency, one message at a
                  time, on the first --latency-examples test sentences (the same for every system)

Systems (SYSTEMS below): Rasa's default pipeline (DIET for intents and entities), and the
student's intents with DIET entity-only on Rasa's sparse features, with the student's token
features and DIET entity-only without transformer layers, and with CRFEntityExtractor (Rasa's
lexical features alone, or with the student's token features).

Target (issue 16): a student pipeline with entity micro-F1 and intent accuracy >= the default
pipeline's and parse latency <= 0.5x, on every task, in one run. Writes
benchmarks/results/entities.json and .md after every system, so an interrupted run keeps them.
"""
import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish, results_so_far  # noqa: E402
from small_students import TaskRun  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import ENTITY_COMPONENTS  # noqa: E402
from rasa_kd.students.presets import DEFAULT_PRESET  # noqa: E402

TASKS = ("mtod-es", "rasa-demo")
DEFAULT_SYSTEM = "diet"
LATENCY_TARGET = 0.5  # x the default pipeline's median parse time

HEADER = "recipe: default.v1\nlanguage: en\nassistant_id: rasa-kd-entities\npipeline:\n"
FOOTER = """  - name: EntitySynonymMapper
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies: []
"""


def default_featurizers() -> str:
    """The sparse featurizers of Rasa's default pipeline, for DIET entity-only on the same features."""
    from rasa_runner import DIET_CONFIG

    return DIET_CONFIG[DIET_CONFIG.index("  - name: RegexFeaturizer"):DIET_CONFIG.index("  - name: DIETClassifier")]


def student_intents(student: Path) -> str:
    return f"  - name: rasa_kd.components.StudentIntentClassifier\n    student: {student}\n"


def student_features(student: Path) -> str:
    return f"  - name: rasa_kd.components.StudentFeaturizer\n    student: {student}\n"


DIET_ENTITIES = """  - name: DIETClassifier
    intent_classification: false
    entity_recognition: true
    epochs: 100
    constrain_similarities: true
"""
# CRFEntityExtractor only tags messages that carry some features: LexicalSyntacticFeaturizer's
# are the cheapest (the CRF computes its own lexical features from the tokens).
CRF = "  - name: LexicalSyntacticFeaturizer\n  - name: CRFEntityExtractor\n"
# Rasa's default CRF features plus the dense token features of the components before it.
CRF_DENSE = ENTITY_COMPONENTS.replace("  - name: EntitySynonymMapper\n", "")


def default_config(student: Path) -> str:
    from rasa_runner import DIET_CONFIG

    return DIET_CONFIG


def recommended_config(student: Path) -> str:
    """What `rasa-kd pipeline` prints and `make demo` trains for data with entities."""
    from rasa_runner import student_config

    return student_config(student, entities=True)


def with_entities(middle: str) -> str:
    return HEADER + "  - name: WhitespaceTokenizer\n" + middle + FOOTER


SYSTEMS: Dict[str, Callable[[Path], str]] = {
    # cheapest first, so that an interrupted run has the most rows
    "student+crf": lambda s: with_entities(student_intents(s) + CRF),
    "student-tokens+crf": recommended_config,
    "student+featurizer+crf": lambda s: with_entities(student_features(s) + student_intents(s) + CRF_DENSE),
    DEFAULT_SYSTEM: default_config,
    "student+featurizer+diet-entities": lambda s: with_entities(
        student_features(s) + student_intents(s) + DIET_ENTITIES + "    number_of_transformer_layers: 0\n"),
    "student+diet-entities": lambda s: with_entities(default_featurizers() + student_intents(s) + DIET_ENTITIES),
}
DESCRIPTIONS = {
    DEFAULT_SYSTEM: "Rasa default pipeline (DIET intents + entities)",
    "student+diet-entities": "student intents + DIET entity-only (CountVectors)",
    "student+featurizer+diet-entities": "student intents + StudentFeaturizer + DIET entity-only, 0 transformer layers",
    "student+crf": "student intents + CRFEntityExtractor (its lexical features)",
    "student-tokens+crf": "**student intents and token features + CRFEntityExtractor (recommended)**",
    "student+featurizer+crf": "student intents + StudentFeaturizer + CRFEntityExtractor (lexical + student features)",
}


class EntityRun(TaskRun):
    """One task: the data and the default student as small_students builds them, then every system."""

    def __init__(self, name: str, work: Path, latency_examples: int):
        super().__init__(name, work, [DEFAULT_PRESET], latency_examples)

    def build_student(self) -> Path:
        self.convert()
        self.prepare()
        return self.student(DEFAULT_PRESET, self.transfer(self.teacher()))

    def system(self, name: str, student: Path) -> Dict:
        import rasa_runner

        folder = self.root / "systems" / name
        config = SYSTEMS[name](student.resolve())
        model, latency = folder / "model.tar.gz", folder / "latency.json"
        inputs = [self.data] + ([student] if name != DEFAULT_SYSTEM else [])

        def train() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.yml").write_text(config)
            rasa_runner.train_nlu(folder / "config.yml", self.file("train"), folder, "model")

        def test(split: str) -> None:
            scores = rasa_runner.test_nlu(model, self.file(split), folder / split)
            (folder / f"{split}.json").write_text(json.dumps(scores, indent=1))

        def time_parses() -> None:
            latency.write_text(json.dumps(rasa_runner.parse_latency(model, self.latency_texts()), indent=1))

        self.stages.run(f"train-{name}", {"config": config}, inputs, model, train)
        for split in ("test", "dev"):  # dev chooses recipes, test is reported
            self.stages.run(f"{split}-{name}", {"model": str(model)}, [model, self.file(split)],
                            folder / f"{split}.json", lambda s=split: test(s))
        self.stages.run(f"latency-{name}", {"model": str(model), "n": self.latency_examples, "load_seconds": True},
                        [model, self.file("test")], latency, time_parses)
        test_scores, dev_scores = (json.loads((folder / f"{split}.json").read_text()) for split in ("test", "dev"))
        return {"description": DESCRIPTIONS[name], "config": config, "intent_accuracy": test_scores["accuracy"],
                "intent_macro_f1": test_scores["macro_f1"], "entities": test_scores["entities"],
                "dev": {"intent_accuracy": dev_scores["accuracy"], "entities": dev_scores["entities"]},
                "latency_ms": json.loads(latency.read_text()), "model_mb": round(model.stat().st_size / 1e6, 2),
                "train_minutes": round((self.stages.seconds(f"train-{name}") or 0) / 60, 2)}

    def latency_texts(self) -> List[str]:
        from rasa_kd.formats.nlu_yaml import read_examples

        return [example.text for example in read_examples(self.file("test"))][: self.latency_examples]

    def entity_counts(self) -> Dict:
        from rasa_kd.formats.nlu_yaml import read_examples

        counts = {}
        for split in ("train", "dev", "test"):
            examples = read_examples(self.file(split))
            counts[split] = {"examples": len(examples),
                             "with_entities": sum(1 for e in examples if e.entities),
                             "entities": sum(len(e.entities) for e in examples),
                             "entity_labels": len({x["entity"] for e in examples for x in e.entities})}
        return counts


def extractor_report(entry: Dict) -> Dict:
    """Rasa's entity report of the system's entity extractor (each system has exactly one;
    none when it predicted no entity at all)."""
    return next(iter(entry["entities"].values()), {})


def entity_f1(entry: Dict) -> float:
    return extractor_report(entry).get("micro_f1") or 0.0


def verdicts(systems: Dict[str, Dict]) -> None:
    """Each student system against the default pipeline, on the issue's three targets."""
    default = systems.get(DEFAULT_SYSTEM)
    if not default:
        return
    for name, entry in systems.items():
        ratio = entry["latency_ms"]["median_ms"] / default["latency_ms"]["median_ms"]
        entry["x_default_latency"] = round(ratio, 3)
        if name == DEFAULT_SYSTEM:
            continue
        entry["targets"] = {"entity_f1": entity_f1(entry) >= entity_f1(default),
                            "intent_accuracy": entry["intent_accuracy"] >= default["intent_accuracy"],
                            "latency": ratio <= LATENCY_TARGET}
        entry["meets_targets"] = all(entry["targets"].values())


# ---------------------------------------------------------------- report


def target_summary(entry: Dict) -> str:
    """`all met`, `missed: <targets>`, or nothing for the default pipeline."""
    if "meets_targets" not in entry:
        return ""
    missed = [name for name, met in entry["targets"].items() if not met]
    return f"missed: {', '.join(missed)}" if missed else "all met"


def markdown(results: Dict) -> str:
    lines = ["# Intents and entities: student pipelines against Rasa's default pipeline", "",
             f"Produced by `benchmarks/entities.py` on this machine ({results['machine']['cores']} cores, "
             f"{results['machine']['cpu']}). `rasa train nlu` on train, `rasa test nlu` on test: intent accuracy "
             "from Rasa's intent report, entity F1 from Rasa's entity report of the pipeline's extractor "
             "(token level, micro average over the entity labels). Parse = in-process `Agent.parse_message`, "
             "one message at a time. Target: entity F1 and intent accuracy >= the default pipeline's, parse "
             f"<= {LATENCY_TARGET}x its time.", ""]
    for task, result in results["tasks"].items():
        data = result["data"]
        lines += [f"## {task} (train {data['train']['examples']:,}, test {data['test']['examples']:,} unique "
                  f"examples; {data['test']['entities']:,} test entities of {data['train']['entity_labels']} "
                  f"labels)", "",
                  "| system | intent acc | entity micro-F1 | entity macro-F1 | dev intent acc | dev entity micro-F1 | "
                  "parse ms (median) | p95 ms | x default | Rasa model MB | load s | train min | targets (test) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, entry in result["systems"].items():
            report = extractor_report(entry)
            met = target_summary(entry)
            lines.append(f"| {entry['description']} | {entry['intent_accuracy']:.4f} | "
                         f"{report.get('micro_f1') or 0:.4f} | {report.get('macro_f1') or 0:.4f} | "
                         f"{entry['dev']['intent_accuracy']:.4f} | {entity_f1(entry['dev']):.4f} | "
                         f"{entry['latency_ms']['median_ms']:.2f} | {entry['latency_ms']['p95_ms']:.2f} | "
                         f"{entry.get('x_default_latency', float('nan')):.2f} | {entry['model_mb']:.1f} | "
                         f"{entry['latency_ms'].get('load_seconds', float('nan')):.1f} | "
                         f"{entry['train_minutes']:.1f} | {met} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS),
                        help="systems to run (default: all; targets need the default pipeline, `diet`)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "entities")
    parser.add_argument("--latency-examples", type=int, default=300)
    args = parser.parse_args(argv)
    from rasa_kd.errors import UserError

    results = results_so_far("entities", "benchmarks/entities.py")
    for task in args.tasks:
        run = EntityRun(task, args.work, args.latency_examples)
        try:
            student = run.build_student()
            entry = results["tasks"].setdefault(task, {"systems": {}})
            entry.update(data=run.entity_counts(), student=str(student.relative_to(ROOT)))
            for name in [s for s in SYSTEMS if s in args.systems]:  # cheapest first
                started = time.time()
                entry["systems"][name] = run.system(name, student)
                entry["systems"][name]["run_seconds"] = round(time.time() - started, 1)
                verdicts(entry["systems"])
                publish("entities", results, markdown(results))  # after every system
        except UserError as error:
            print(f"error: {task}: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
