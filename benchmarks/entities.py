"""Intents and entities at student speed: whole Rasa NLU pipelines on data with entity annotations.

    .venv/bin/python benchmarks/entities.py                          # mtod-es and rasa-demo, every system
    .venv/bin/python benchmarks/entities.py --tasks mtod-es --systems diet student+crf
    .venv/bin/python benchmarks/entities.py --systems --leads default tag-weight-2   # tag-loss leads only

Per task (cached stages in benchmarks/work/entities/<task>, so a re-run resumes):
  data            as benchmarks/small_students.py: convert (slot spans -> Rasa entities), splits
  students        `rasa-kd pipeline`'s own stage code (pipeline.build_student): the default
                  teacher(s) chosen by the data, rules transfer set, the default (balanced)
                  student distilled and exported; once intent-only (students/intents, --no-entities),
                  once joint (students/joint, the default: the joint teacher's tag head, the student's
                  token head), once joint with --labelling first (students/joint-first)
  per system      `rasa train nlu` on train; `rasa test nlu` on test (Rasa's own intent
                  report and per-extractor entity report: token-level micro-F1 over the
                  entity labels); in-process `Agent.parse_message` latency, one message at a
                  time, on the first --latency-examples test sentences (the same for every system);
                  `Agent.load` seconds include the first load's imports, so a task whose load is
                  timed after another's in the same process reads low: time loads one task per run

Systems (SYSTEMS below): Rasa's default pipeline (DIET for intents and entities), the intent-only
student (the memory baseline), the joint student (`entities: true`: intents and entities from one
small model; also with first-piece labelling, to choose the labelling on dev), and the
intent-only student's intents with DIET entity-only on Rasa's sparse features, with the
student's token features and DIET entity-only without transformer layers, and with
CRFEntityExtractor (Rasa's lexical features alone, or with the student's token features).
Each system is also served with `rasa run` for its resident memory.

Targets: issue 16, a student pipeline with entity micro-F1 and intent accuracy >= the default
pipeline's and parse latency <= 0.5x, on every task, in one run; issue 31, the joint student with
entity micro-F1 >= the default pipeline's and the CRF pipeline's, intent accuracy >=
the intent-only student's, Rasa model <= 6 MB, `Agent.load` <= 3 s, parse <= 0.25x the default
pipeline's and `rasa run` memory <= the intent-only student's + 10 %. Writes
benchmarks/results/entities.json and .md after every system, so an interrupted run keeps them.
"""
import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import options_text  # noqa: E402
from run import publish, results_so_far  # noqa: E402
from small_students import TaskRun  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import ENTITY_COMPONENTS, PipelineOptions, Stages, build_student  # noqa: E402
from rasa_kd.students.presets import DEFAULT_PRESET  # noqa: E402

TASKS = ("mtod-es", "rasa-demo")
DEFAULT_SYSTEM = "diet"
CRF_SYSTEM = "student-tokens+crf"
INTENTS_SYSTEM = "student-intents"  # no entities: the memory baseline
JOINT_SYSTEM = "student-joint"
JOINT_FIRST_SYSTEM = "student-joint-first"  # the labelling choice: the teacher tags first pieces only
LATENCY_TARGET = 0.5  # x the default pipeline's median parse time
JOINT_TARGETS = {"model_mb": 6.0, "load_seconds": 3.0, "x_default_latency": 0.25, "x_intents_rss": 1.10}
SERVED_EXAMPLES = 50  # parsed over HTTP before the server's memory is read

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


def default_config(student: Optional[Path]) -> str:
    from rasa_runner import DIET_CONFIG

    return DIET_CONFIG


def student_pipeline(**keys) -> Callable[[Path], str]:
    """What `rasa-kd pipeline` prints for the student: rasa_runner.student_config with `keys`
    (entities: the CRF extractor on the student's token vectors; entities and joint: the student's own token head)."""
    def config(student: Path) -> str:
        from rasa_runner import student_config

        return student_config(student, **keys)

    return config


def with_entities(middle: str) -> str:
    return HEADER + "  - name: WhitespaceTokenizer\n" + middle + FOOTER


SYSTEMS: Dict[str, Callable[[Optional[Path]], str]] = {
    # cheapest first, so that an interrupted run has the most rows
    INTENTS_SYSTEM: student_pipeline(),
    "student+crf": lambda s: with_entities(student_intents(s) + CRF),
    CRF_SYSTEM: student_pipeline(entities=True),
    JOINT_SYSTEM: student_pipeline(entities=True, joint=True),
    JOINT_FIRST_SYSTEM: student_pipeline(entities=True, joint=True),
    "student+featurizer+crf": lambda s: with_entities(student_features(s) + student_intents(s) + CRF_DENSE),
    DEFAULT_SYSTEM: default_config,
    "student+featurizer+diet-entities": lambda s: with_entities(
        student_features(s) + student_intents(s) + DIET_ENTITIES + "    number_of_transformer_layers: 0\n"),
    "student+diet-entities": lambda s: with_entities(default_featurizers() + student_intents(s) + DIET_ENTITIES),
}
DESCRIPTIONS = {
    DEFAULT_SYSTEM: "Rasa default pipeline (DIET intents + entities)",
    INTENTS_SYSTEM: "student intents only (no entities; memory baseline)",
    JOINT_SYSTEM: "**joint student: intents and entities from one model (the default)**",
    JOINT_FIRST_SYSTEM: "joint student, its teacher's tag head trained on each word's first piece only "
                        "(`--labelling first`)",
    "student+diet-entities": "student intents + DIET entity-only (CountVectors)",
    "student+featurizer+diet-entities": "student intents + StudentFeaturizer + DIET entity-only, 0 transformer layers",
    "student+crf": "student intents + CRFEntityExtractor (its lexical features)",
    CRF_SYSTEM: "student intents and token features + CRFEntityExtractor (`--no-entities`' config)",
    "student+featurizer+crf": "student intents + StudentFeaturizer + CRFEntityExtractor (lexical + student features)",
}


STUDENT_KINDS = {JOINT_SYSTEM: "joint", JOINT_FIRST_SYSTEM: "joint-first"}  # the others: "intents"
# Each kind's `rasa-kd pipeline` options beyond the defaults (joint: the default itself).
STUDENT_OPTIONS = {"intents": {"entities": False}, "joint": {}, "joint-first": {"labelling": "first"}}


# The joint student's tag loss, chosen on dev (issue 31): its build's labelled transfer set re-distilled
# with one DistilOptions change each; `default` is the build's own student.
DEFAULT_LEAD = "default"
TAG_LEADS = {DEFAULT_LEAD: {}, "tag-weight-0.5": {"tag_weight": 0.5}, "tag-weight-2": {"tag_weight": 2.0},
             "gold-tags-0.5": {"tag_hard_weight": 0.5}}


class EntityRun(TaskRun):
    """One task: the data as small_students builds it, the default students as `rasa-kd pipeline`
    builds them, then every system."""

    def __init__(self, name: str, work: Path, latency_examples: int):
        super().__init__(name, work, [DEFAULT_PRESET], latency_examples)

    def build_student(self, kind: str) -> Path:
        """A student through `rasa-kd pipeline`'s stages: `joint` (the default), `joint-first`
        (first-piece labelling) or `intents` (--no-entities)."""
        out = self.root / "students" / kind
        options = PipelineOptions(nlu=self.file("train"), out=out, quiet=True, **STUDENT_OPTIONS[kind])
        _, student = build_student(Stages(out), options, self.file("train"), self.file("dev"), [self.file("test")])
        return student

    def tag_lead(self, lead: str) -> Dict:
        """The joint build's student with the lead's tag-loss options (TAG_LEADS), distilled as
        `rasa-kd pipeline` distils it (resumable stage) and scored per piece on dev and test."""
        import dataclasses

        from rasa_kd.pipeline import distil_into, student_options
        from rasa_kd.students.presets import get_preset

        build = self.root / "students" / "joint"
        student, leads = build / "student", build / "leads"
        if lead != DEFAULT_LEAD:
            student = leads / lead
            teacher = next(p for p in (build / "teacher", build / "teacher-0") if p.is_dir())
            options = student_options(PipelineOptions(nlu=self.file("train"), out=build), get_preset(DEFAULT_PRESET),
                                      build / "transfer-labelled", self.file("dev"), student, teacher)
            options = dataclasses.replace(options, **TAG_LEADS[lead])
            Stages(leads).run_options(lead, options, [build / "transfer-labelled", self.file("dev")], student,
                                      lambda o: distil_into(o, leads))
        manifest = json.loads((student / "student.json").read_text(encoding="utf-8"))
        return {"dev": piece_scores(student, self.file("dev")), "test": piece_scores(student, self.file("test")),
                "options": TAG_LEADS[lead], "minutes": round(manifest["recipe"]["training_seconds"] / 60, 2)}

    def system(self, name: str, student: Optional[Path]) -> Dict:
        """`name` trained, tested, timed and served; `student`: None for the default pipeline."""
        import rasa_runner

        folder = self.root / "systems" / name
        config = SYSTEMS[name](student.resolve() if student else None)
        model, latency, served = folder / "model.tar.gz", folder / "latency.json", folder / "served.json"
        inputs = [self.data] + ([student] if student else [])

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
        self.stages.run(f"served-{name}", {"model": str(model), "n": SERVED_EXAMPLES}, [model, self.file("test")],
                        served, lambda: served.write_text(json.dumps(self.serve(model, folder), indent=1)))
        test_scores, dev_scores = (json.loads((folder / f"{split}.json").read_text()) for split in ("test", "dev"))
        return {"description": DESCRIPTIONS[name], "config": config, "intent_accuracy": test_scores["accuracy"],
                "intent_macro_f1": test_scores["macro_f1"], "entities": test_scores["entities"],
                "dev": {"intent_accuracy": dev_scores["accuracy"], "entities": dev_scores["entities"]},
                "latency_ms": json.loads(latency.read_text()), "model_mb": round(model.stat().st_size / 1e6, 2),
                "rss_mb": json.loads(served.read_text())["rss_mb"],
                "train_minutes": round((self.stages.seconds(f"train-{name}") or 0) / 60, 2)}

    def serve(self, model: Path, folder: Path) -> Dict:
        """`rasa run`'s resident memory after it parsed the first test sentences over HTTP."""
        import rasa_runner

        with rasa_runner.RasaServer(model, folder / "rasa-run.log") as server:
            for text in self.latency_texts()[:SERVED_EXAMPLES]:
                server.parse(text)
            return {"rss_mb": round(server.rss_mb(), 1), "parsed": SERVED_EXAMPLES}

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
        if name in (DEFAULT_SYSTEM, INTENTS_SYSTEM):  # the references, not candidates
            continue
        entry["targets"] = {"entity_f1": entity_f1(entry) >= entity_f1(default),
                            "intent_accuracy": entry["intent_accuracy"] >= default["intent_accuracy"],
                            "latency": ratio <= LATENCY_TARGET}
        if name in STUDENT_KINDS:
            entry["targets"].update(joint_targets(entry, systems))
        entry["meets_targets"] = all(entry["targets"].values())


def joint_targets(joint: Dict, systems: Dict[str, Dict]) -> Dict[str, bool]:
    """Issue 31's targets beyond issue 16's: against the CRF pipeline and the
    intent-only student where they were measured."""
    targets = {"model_mb": joint["model_mb"] <= JOINT_TARGETS["model_mb"],
               "load_seconds": joint["latency_ms"]["load_seconds"] <= JOINT_TARGETS["load_seconds"],
               "latency": joint["x_default_latency"] <= JOINT_TARGETS["x_default_latency"]}
    if CRF_SYSTEM in systems:
        targets["entity_f1_crf"] = entity_f1(joint) >= entity_f1(systems[CRF_SYSTEM])
    intents = systems.get(INTENTS_SYSTEM)
    if intents:
        targets["intent_accuracy_student"] = joint["intent_accuracy"] >= intents["intent_accuracy"]
        if joint.get("rss_mb") and intents.get("rss_mb"):
            joint["x_intents_rss"] = round(joint["rss_mb"] / intents["rss_mb"], 3)
            targets["rss"] = joint["x_intents_rss"] <= JOINT_TARGETS["x_intents_rss"]
    return targets


def piece_scores(student: Path, nlu: Path) -> Dict[str, float]:
    """The student package's intent accuracy and entity F1 per piece (distil's dev metric) on `nlu`."""
    from rasa_kd.evaluation.metrics import joint_selection
    from rasa_kd.formats import student_package
    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.students.distil import entity_scores_on, logits_on, scores_of
    from rasa_kd.students.tokenizers import load_tokenizer

    manifest = student_package.read_manifest(student)
    model = student_package.build_model(manifest)
    student_package.load_weights(model, student)
    tokenizer = load_tokenizer(student, manifest["tokenizer"])
    examples, labels = read_examples(nlu), manifest["labels"]
    scores = {**scores_of(logits_on(model, tokenizer, examples, labels), examples, labels),
              **entity_scores_on(model, tokenizer, examples, labels, manifest["tags"])}
    return {"intent_accuracy": scores["accuracy"], "entity_f1": scores["entity_f1"],
            "selection": joint_selection(scores)}


# ---------------------------------------------------------------- report


def target_summary(entry: Dict) -> str:
    """`all met`, `missed: <targets>`, or nothing for the default pipeline."""
    if "meets_targets" not in entry:
        return ""
    missed = [name for name, met in entry["targets"].items() if not met]
    return f"missed: {', '.join(missed)}" if missed else "all met"


def by_earlier_student(name: str, entry: Dict) -> bool:
    return name != DEFAULT_SYSTEM and "student" not in entry


def markdown(results: Dict) -> str:
    lines = ["# Intents and entities: student pipelines against Rasa's default pipeline", "",
             f"Produced by `benchmarks/entities.py` on this machine ({results['machine']['cores']} cores, "
             f"{results['machine']['cpu']}). `rasa train nlu` on train, `rasa test nlu` on test: intent accuracy "
             "from Rasa's intent report, entity F1 from Rasa's entity report of the pipeline's extractor "
             "(token level, micro average over the entity labels). Parse = in-process `Agent.parse_message`, "
             "one message at a time. Target: entity F1 and intent accuracy >= the default pipeline's, parse "
             f"<= {LATENCY_TARGET}x its time; for the joint student also entity F1 >= the CRF "
             f"pipeline's, intent accuracy >= the intent-only student's, model <= {JOINT_TARGETS['model_mb']:g} MB, "
             f"load <= {JOINT_TARGETS['load_seconds']:g} s, parse <= {JOINT_TARGETS['x_default_latency']}x and "
             "`rasa run` memory <= the intent-only student's + 10 %. Memory: resident MB of `rasa run` "
             f"(with its children) after {SERVED_EXAMPLES} parses over HTTP; blank where not measured.", ""]
    for task, result in results["tasks"].items():
        data = result["data"]
        lines += [f"## {task} (train {data['train']['examples']:,}, test {data['test']['examples']:,} unique "
                  f"examples; {data['test']['entities']:,} test entities of {data['train']['entity_labels']} "
                  f"labels)", "",
                  "| system | intent acc | entity micro-F1 | entity macro-F1 | dev intent acc | dev entity micro-F1 | "
                  "parse ms (median) | p95 ms | x default | Rasa model MB | load s | `rasa run` MB | train min | "
                  "targets (test) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, entry in result["systems"].items():
            report = extractor_report(entry)
            met = target_summary(entry)
            earlier = " †" if by_earlier_student(name, entry) else ""
            lines.append(f"| {entry['description']}{earlier} | {entry['intent_accuracy']:.4f} | "
                         f"{report.get('micro_f1') or 0:.4f} | {report.get('macro_f1') or 0:.4f} | "
                         f"{entry['dev']['intent_accuracy']:.4f} | {entity_f1(entry['dev']):.4f} | "
                         f"{entry['latency_ms']['median_ms']:.2f} | {entry['latency_ms']['p95_ms']:.2f} | "
                         f"{entry.get('x_default_latency', float('nan')):.2f} | {entry['model_mb']:.1f} | "
                         f"{entry['latency_ms'].get('load_seconds', float('nan')):.1f} | "
                         f"{entry['rss_mb'] if entry.get('rss_mb') else ''} | {entry['train_minutes']:.1f} | {met} |")
        lines.append("")
        lines += leads_table(result.get("leads", {}))
    lines += leads_summary([result.get("leads", {}) for result in results["tasks"].values()])
    if any(by_earlier_student(name, entry) for result in results["tasks"].values()
           for name, entry in result["systems"].items()):
        lines += ["† measured before the students were built by `rasa-kd pipeline`'s stage code: an earlier "
                  "intent-only student (MiniLM teacher) on the same splits.", ""]
    return "\n".join(lines) + "\n"


def leads_table(leads: Dict[str, Dict]) -> List[str]:
    if not leads:
        return []
    lines = ["The joint student's tag loss (dev decides; scores per piece as distillation selects epochs: "
             "intent accuracy, entity F1, their mean):", "",
             "| lead | options | dev intent acc | dev entity F1 | dev mean | test intent acc | test entity F1 | "
             "distil min |", "|---|---|---|---|---|---|---|---|"]
    for lead, entry in leads.items():
        dev, test = entry["dev"], entry["test"]
        lines.append(f"| {lead} | {options_text(entry['options']) or 'the default'} | {dev['intent_accuracy']:.4f} | "
                     f"{dev['entity_f1']:.4f} | {dev['selection']:.4f} | {test['intent_accuracy']:.4f} | "
                     f"{test['entity_f1']:.4f} | {entry['minutes']:.1f} |")
    return lines + [""]


def leads_summary(per_task: List[Dict[str, Dict]]) -> List[str]:
    """Each lead's dev and test mean over the tasks that ran every lead it is compared with."""
    tasks = [leads for leads in per_task if leads]
    common = [lead for lead in TAG_LEADS if tasks and all(lead in leads for leads in tasks)]
    if len(tasks) < 2 or len(common) < 2:
        return []
    lines = [f"Tag-loss leads, mean over the {len(tasks)} tasks (dev decides):", "",
             "| lead | dev mean | test intent acc | test entity F1 |", "|---|---|---|---|"]
    for lead in common:
        def mean_of(split: str, key: str) -> float:
            return sum(leads[lead][split][key] for leads in tasks) / len(tasks)

        lines.append(f"| {lead} | {mean_of('dev', 'selection'):.4f} | {mean_of('test', 'intent_accuracy'):.4f} | "
                     f"{mean_of('test', 'entity_f1'):.4f} |")
    return lines + [""]


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--systems", nargs="*", choices=list(SYSTEMS), default=list(SYSTEMS),
                        help="systems to run (default: all; targets need the default pipeline, `diet`)")
    parser.add_argument("--leads", nargs="*", choices=list(TAG_LEADS), default=[],
                        help="the joint student's tag-loss leads to distil and score on dev and test (default: none)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "entities")
    parser.add_argument("--latency-examples", type=int, default=300)
    args = parser.parse_args(argv)
    from rasa_kd.errors import UserError

    results = results_so_far("entities", "benchmarks/entities.py")
    for task in args.tasks:
        run = EntityRun(task, args.work, args.latency_examples)
        try:
            run.convert()
            run.prepare()
            entry = results["tasks"].setdefault(task, {"systems": {}})
            entry["data"] = run.entity_counts()
            students: Dict[str, Path] = {}  # kind -> student, each kind built once and only if needed
            for name in [s for s in SYSTEMS if s in args.systems]:  # cheapest first
                started = time.time()
                student = None
                if name != DEFAULT_SYSTEM:
                    kind = STUDENT_KINDS.get(name, "intents")
                    if kind not in students:
                        students[kind] = run.build_student(kind)
                    student = students[kind]
                entry["systems"][name] = run.system(name, student)
                entry["systems"][name]["student"] = str(student.relative_to(ROOT)) if student else None
                entry["systems"][name]["run_seconds"] = round(time.time() - started, 1)
                verdicts(entry["systems"])
                publish("entities", results, markdown(results))  # after every system
            for lead in args.leads:
                if "joint" not in students:
                    students["joint"] = run.build_student("joint")
                entry.setdefault("leads", {})[lead] = run.tag_lead(lead)
                publish("entities", results, markdown(results))
        except UserError as error:
            print(f"error: {task}: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
