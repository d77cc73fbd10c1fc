"""Distillation inside `rasa train`: the student made from the training data Rasa hands a component.

When a component's config names no `student:` package, `train()` calls
`distil_training_data`: the intent examples of Rasa's `TrainingData` (deduplicated,
retrieval intents under their base intent, as Rasa's classifiers predict them) are
split into train and a stratified dev share, and `rasa_kd.pipeline.build_student`
runs teacher -> augment -> label -> distil -> export on them with the configured
preset: the same stage functions and options objects as `rasa-kd pipeline`. All of
it happens in a temporary folder that is removed afterwards; only the student's
runtime files go into the model (the teacher is never shipped).

It also checks a pre-made `student:` package against the training data: a package
distilled from sentences that are not in this training data (the other folds of
`rasa test nlu --cross-validation`, or a held-out test set) scores optimistically.
"""
import dataclasses
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_kd.errors import UserError
from rasa_kd.formats import student_package
from rasa_kd.formats.nlu_yaml import Example, write_examples
from rasa_kd.formats.student_package import check_runtime
from rasa_kd.nlu_data.split import split_examples
from rasa_kd.options import as_record
from rasa_kd.pipeline import JUDGE_MIN, JUDGE_SHARE, REFIT_MAX_SENTENCES, PipelineOptions, choose_refit
from rasa_kd.students.fallback import check_score
from rasa_kd.students.presets import distil_options, get_preset
from rasa_kd.students.unknown import ACCURACY_COST, THRESHOLD_RULE, UNKNOWN_SCORE_OFF

logger = logging.getLogger(__name__)

# The component's keys take their defaults from `rasa-kd pipeline`'s options (one home per default).
# `teacher: null` and `language: null`: the teacher is chosen by the data and Rasa's `language:` key.
TRAINING_CONFIG = {"teacher": PipelineOptions.teacher, "language": PipelineOptions.language,
                   "preset": PipelineOptions.preset, "transfer_size": PipelineOptions.size,
                   "epochs": PipelineOptions.epochs, "seed": PipelineOptions.seed,
                   "dev_fraction": PipelineOptions.dev_fraction, "entities": PipelineOptions.entities,
                   "augment": PipelineOptions.augment, "teacher_refit": PipelineOptions.teacher_refit,
                   "unknown_score": PipelineOptions.unknown_score, "outliers": PipelineOptions.outliers}
TRAINING_DATA_NODE = "nlu_training_data_provider"  # the node of Rasa's graph whose config holds `language:`


def training_examples(training_data: TrainingData, entities: bool = False) -> List:
    """The intent examples (with `entities`, their entity annotations too: a joint teacher learns them)."""
    return [Example(message.get(TEXT), message.get(INTENT),
                    [e for e in message.get(ENTITIES) or [] if "start" in e and "end" in e] if entities else [])
            for message in training_data.intent_examples if message.get(TEXT) and message.get(INTENT)]


def check_examples(examples: Sequence, component: str) -> None:
    intents = {example.intent for example in examples}
    if not examples:
        raise InvalidConfigException(f"{component}: the NLU data has no intent examples to distil a student from")
    if len(intents) < 2:
        raise InvalidConfigException(f"{component}: the NLU data has one intent ({', '.join(intents)}); a classifier "
                                     f"needs at least two")


def refit_of(config: Dict[str, Any]) -> str:
    """The configured teacher refit, or its default when the config as written lacks it."""
    return config.get("teacher_refit") or TRAINING_CONFIG["teacher_refit"]


def unknown_score_of(config: Dict[str, Any]) -> str:
    """The configured unknown-intent score, or its default when the config as written lacks it."""
    return config.get("unknown_score") or TRAINING_CONFIG["unknown_score"]


def check_config(config: Dict[str, Any], component: str) -> None:
    """Config mistakes stop `rasa train` with one line before any training starts: the library's
    own validation and message, prefixed with the component's name."""
    try:
        check_runtime(config.get("runtime") or "auto")
        if not config.get("student"):
            get_preset(config.get("preset"))
            choose_refit(refit_of(config), 0)
        if unknown_score_of(config) != UNKNOWN_SCORE_OFF:
            check_score(unknown_score_of(config))
    except UserError as error:
        raise InvalidConfigException(f"{component}: {error}") from error


def teachers_of(config: Dict[str, Any]) -> List[str]:
    """The configured teachers; none: the data chooses (rasa_kd.teachers.choice)."""
    teacher = config.get("teacher")
    if not teacher:
        return []
    return [str(t) for t in teacher] if isinstance(teacher, (list, tuple)) else [str(teacher)]


def with_rasa_language(config: Dict[str, Any], execution_context) -> Dict[str, Any]:
    """The component's config with `language` from Rasa's `language:` key unless set on the component:
    Rasa hands components no language, but its training graph gives it to the node that reads the data."""
    if config.get("language"):
        return config
    schema = execution_context.graph_schema
    node = schema.nodes.get(TRAINING_DATA_NODE) if schema is not None else None
    language = node.config.get("language") if node is not None else None
    return {**config, "language": language} if language else config


# Extractors that find the data's entities themselves: beside the student's own (`entities: true`),
# each entity would come twice.
TRAINED_EXTRACTORS = ("CRFEntityExtractor", "DIETClassifier")


def warn_other_extractors(config: Dict[str, Any], execution_context, component: str) -> None:
    """One line when the student's entities (the default for data with entities) meet another
    trained extractor in the pipeline, e.g. an older config with CRFEntityExtractor."""
    schema = execution_context.graph_schema
    if not config.get("entities") or config.get("student") or schema is None:
        return
    others = sorted({node.uses.__name__ for node in schema.nodes.values()
                     if node.uses.__name__ in TRAINED_EXTRACTORS and node.config.get("entity_recognition", True)})
    if others:
        logger.warning(f"{component}: the student extracts the data's entities (entities: true, the default) and so "
                       f"does {', '.join(others)}; set `entities: false` on {component} to leave them to "
                       f"{' and '.join(others)}")


def recipe_record(config: Dict[str, Any]) -> Dict[str, Any]:
    """What the configured preset resolves to in this rasa-kd: its student options, size rule
    and int8 check. When a release changes a preset's recipe, Rasa's cache must not hand back
    the student of the old one."""

    # Rasa's fingerprint hook may hand over the config as written, without the defaults
    preset = get_preset(config.get("preset") or TRAINING_CONFIG["preset"])
    return {"distil": as_record(distil_options(preset.name)), "preset": dataclasses.asdict(preset)}


def training_fingerprint(config: Dict[str, Any]) -> str:
    """The teachers' names, the content of those that are local folders, the recipe the preset
    stands for and the teacher and augmentation choices' rules (Rasa adds the config and the
    training data itself)."""
    from rasa_kd.pipeline import input_fingerprint

    from rasa_kd.teachers import choice
    from rasa_kd.transfer import augment, outliers

    folders = [Path(t).expanduser() for t in teachers_of(config) if Path(t).expanduser().is_dir()]
    record = [teachers_of(config), input_fingerprint(folders), recipe_record(config), choice.rule_record(),
              augment.choice_record(),
              {"teacher_refit": refit_of(config), "refit_max": REFIT_MAX_SENTENCES, "judge": [JUDGE_SHARE, JUDGE_MIN]},
              {"unknown_score": unknown_score_of(config), "cost": ACCURACY_COST, "rule": THRESHOLD_RULE},
              {"outliers": config.get("outliers") or PipelineOptions.outliers, "corpus": outliers.corpus_digest()}]
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def pipeline_options(config: Dict[str, Any], work: Path) -> PipelineOptions:
    return PipelineOptions(nlu=work / "data", out=work, teacher=teachers_of(config) or None,
                           language=config.get("language"), preset=config["preset"],
                           size=config.get("transfer_size"), epochs=config.get("epochs"), seed=int(config["seed"]),
                           dev_fraction=float(config["dev_fraction"]), entities=bool(config.get("entities")),
                           augment=config.get("augment") or PipelineOptions.augment,
                           outliers=config.get("outliers") or PipelineOptions.outliers,
                           teacher_refit=refit_of(config), unknown_score=unknown_score_of(config),
                           quiet=False)


def write_splits(examples: Sequence, folder: Path, dev_fraction: float, seed: int) -> None:
    splits = split_examples(list(examples), 0.0, dev_fraction, seed)  # as `rasa-kd pipeline --test` splits
    train, dev = splits["train"], splits.get("dev", [])
    if not dev:  # a handful of examples: score dev on the training sentences rather than on nothing
        dev = list(train)
    folder.mkdir(parents=True, exist_ok=True)
    write_examples(folder / "train.yml", train)
    write_examples(folder / "dev.yml", dev)


def distil_training_data(training_data: TrainingData, config: Dict[str, Any], component: str, keep):
    """Distil a student from `training_data` and return `keep(package_path)` (called while the
    temporary work folder still exists, e.g. to load and store the student)."""
    from rasa_kd.pipeline import Stages, build_student

    examples = training_examples(training_data, bool(config.get("entities")))
    check_examples(examples, component)
    started = time.time()
    logger.info(f"{component}: distilling a student from {len(examples)} examples "
                f"({len({e.intent for e in examples})} intents), preset {config['preset']}")
    with tempfile.TemporaryDirectory(prefix="rasa-kd-train-") as work_dir:
        work = Path(work_dir)
        options = pipeline_options(config, work)
        write_splits(examples, work / "data", options.dev_fraction, options.seed)
        try:
            _, student = build_student(Stages(work), options, work / "data" / "train.yml", work / "data" / "dev.yml")
        except UserError as error:
            raise InvalidConfigException(f"{component}: {error}") from error
        logger.info(f"{component}: student distilled in {time.time() - started:.0f} s")
        return keep(student)


def warn_if_leaky(package: Path, training_data: TrainingData, component: str) -> None:
    """Warn when a pre-made package was distilled from sentences outside this training data."""
    recorded = student_package.read_training_hashes(package)
    if not recorded:
        return
    current = {student_package.sentence_hash(e.text) for e in training_examples(training_data)}
    unseen = recorded - current
    if unseen:
        logger.warning(f"{component}: the student package {package} was distilled from {len(unseen)} sentences that "
                       f"are not in this training data (cross-validation folds or a held-out test set?): test "
                       f"scores on them are optimistic. Leave out `student:` to distil inside `rasa train`.")
