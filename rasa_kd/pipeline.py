"""`rasa-kd pipeline`: one command from a Rasa project's NLU data to a distilled student.

Stages (each calls the stage function of the rasa-kd command of the same name with
its options object, built here from --preset and the options below):
  split     OUT/data/{train,dev,test}.yml   held-out test (unless --test) and dev splits
  teacher   OUT/teacher/                    fine-tuned teacher(s), chosen by the data unless --teacher
                                            names them (OUT/teacher-choice.json says which and why);
                                            refit on train + dev for the epochs dev picked (--teacher-refit;
                                            half of a dev share of 2 x JUDGE_MIN or more is kept out of it)
  augment   OUT/transfer/                   Arrow transfer set (rules and/or lm), sized by the preset
  label     OUT/transfer-labelled/          + teacher logits
  distil    OUT/student/                    the student package (the preset's recipe, early-stopped on dev)
  export    OUT/student/model*.onnx         ONNX fp32 + int8; int8 is deployed when it keeps dev accuracy
  fallback  OUT/student/fallback.safetensors
                                            the unknown-intent score (--unknown-score) and the recommended
                                            FallbackClassifier threshold, fitted on train and the dev share
  evaluate  OUT/metrics-teacher.json, OUT/metrics-student.json: the test split, scored with
            the runtime that is deployed

A stage is skipped when its output exists and `OUT/.stages/<stage>.json` records the
same options and the same input files (size and content hash): an interrupted
run resumes at the first stage that did not finish, and a changed input or option
re-runs that stage and everything after it (--fresh re-runs everything). At the end
it prints the config.yml snippet that uses the student, with the recommended threshold.
"""
# The stages are imported inside the functions that run them: the Rasa components import
# this module for `PipelineOptions` when Rasa loads them, and `rasa run` must not load the
# training stack (torch, transformers, datasets) for that.
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from rasa_kd.errors import UserError
from rasa_kd.formats.digests import file_digest
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.student_package import FALLBACK
from rasa_kd.nlu_data.entity_tags import DEFAULT_LABELLING, LABELLINGS
from rasa_kd.options import as_record, option
from rasa_kd.students.presets import DEFAULT_PRESET, Preset, distil_options, get_preset
from rasa_kd.students.unknown import DEFAULT_SCORE, SCORES, UNKNOWN_SCORE_OFF
from rasa_kd.transfer.outliers import AUTO as OUTLIERS_AUTO

logger = logging.getLogger(__name__)

CHOICE_FILE = "teacher-choice.json"  # which teachers the data got and why (rasa_kd.teachers.choice)


def input_fingerprint(paths: Sequence[Path]) -> List[List]:
    """[path, size, SHA-1] per input file: by content, not modification time, because data
    folders that are copied or re-mounted get new times and must not invalidate every stage."""
    rows = []
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            rows.append([str(file), file.stat().st_size, file_digest(file)])
    return rows


class Stages:
    """Runs stage actions, skipping those whose recorded options and inputs are unchanged."""

    def __init__(self, out: Path, fresh: bool = False):
        self.out = out
        self.record_dir = out / ".stages"
        self.fresh = fresh
        self.timings: Dict[str, float] = {}

    def run(self, name: str, description: Dict, inputs: Sequence[Path], output: Path,
            action: Callable[[], object], defaults: Optional[Dict] = None) -> None:
        """Run `action()` unless `output` exists and the last run recorded the same
        `description` (the stage's options) and the same input files. An option missing from
        the record but in `defaults` ran at that default (the record predates the option)."""
        record = {"options": description, "inputs": input_fingerprint(inputs)}
        record_file = self.record_dir / f"{name}.json"
        if (not self.fresh and output.exists() and record_file.exists()
                and self._same_run(with_defaults(json.loads(record_file.read_text()), defaults or {}), record)):
            logger.info(f"== {name}: up to date, skipped ({output})")
            self.timings[name] = 0.0
            return
        started = time.time()
        logger.info(f"== {name}: {summary_line(description)}")
        action()
        self.timings[name] = time.time() - started
        self.record_dir.mkdir(parents=True, exist_ok=True)
        record["inputs"] = input_fingerprint(inputs)
        record["seconds"] = round(self.timings[name], 1)
        record_file.write_text(json.dumps(record, indent=1))
        logger.info(f"== {name}: {self.timings[name]:.1f} s")

    def run_options(self, name: str, options, inputs: Sequence[Path], output: Path,
                    action: Callable[[object], object]) -> None:
        """`run` for a stage options dataclass: recorded without its force/quiet/fresh
        switches, and given force=True when it replaces an earlier output."""
        description = {k: v for k, v in as_record(options).items() if k not in UNRECORDED}
        defaults = {f.name: f.default for f in dataclasses.fields(options)
                    if f.default is not dataclasses.MISSING and f.name in description
                    and not f.metadata.get("rerun_earlier")}
        if hasattr(options, "force"):
            options = dataclasses.replace(options, force=True)
        self.run(name, description, inputs, output, lambda: action(options), defaults)

    @staticmethod
    def _same_run(saved: Dict, record: Dict) -> bool:
        return all(saved.get(key) == value for key, value in record.items())

    def seconds(self, name: str) -> Optional[float]:
        """How long the stage took when it last ran (also when it was skipped this time)."""
        record_file = self.record_dir / f"{name}.json"
        return json.loads(record_file.read_text()).get("seconds") if record_file.exists() else None


UNRECORDED = ("force", "quiet", "fresh")


def with_defaults(saved: Dict, defaults: Dict) -> Dict:
    """A stage record with the options it lacks at their defaults: an option added since the
    record was written does not re-run the stage while it is left at its default."""
    options = saved.get("options", {})
    return {**saved, "options": {**{k: v for k, v in defaults.items() if k not in options}, **options}}


def summary_line(description: Dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in description.items() if v not in (None, False, [], ""))[:300]


# Rasa's `rasa init` value; the student's calibrated confidences keep its meaning
FALLBACK_THRESHOLD = 0.3
# Intents and entities with --no-entities (benchmarks/results/entities.md): the classifier hands
# the student's token vectors to Rasa's CRF, which uses them next to its own lexical features.
CRF_CLASSIFIER_KEYS = ("    token_features: true  # the student's token vectors, for the entity extractor\n"
                  "    entities: false       # the entities are the CRF's\n")
ENTITY_COMPONENTS = """  - name: CRFEntityExtractor
    features:
      - [low, title, upper]
      - [low, bias, prefix5, prefix2, suffix5, suffix3, suffix2, upper, title, digit, pattern, text_dense_features]
      - [low, title, upper]
  - name: EntitySynonymMapper
"""


JOINT_ENTITIES = "    entities: true        # the student extracts the entities too\n  - name: EntitySynonymMapper\n"


def recommended_threshold(student: Path) -> float:
    """The FallbackClassifier threshold the package's fallback stage recommends (else Rasa's default)."""
    from rasa_kd.formats.student_package import MANIFEST, read_manifest

    manifest = read_manifest(student) if (Path(student) / MANIFEST).is_file() else {}
    threshold = (manifest.get("fallback") or {}).get("threshold")
    return FALLBACK_THRESHOLD if threshold is None else round(threshold, 2)


def config_snippet(student: Path, entities: bool = False, joint: bool = False) -> str:
    """The Rasa pipeline that deploys `student`; with `entities`, also the recommended entity extractor
    (`joint`: the student's own token head)."""
    extraction = (JOINT_ENTITIES if joint else CRF_CLASSIFIER_KEYS + ENTITY_COMPONENTS) if entities else ""
    threshold = recommended_threshold(student)
    why = "  # the package's recommended threshold (rasa-kd fallback)" if threshold != FALLBACK_THRESHOLD else ""
    return f"""pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    student: {student}
    runtime: auto         # what `rasa-kd export` chose: int8 ONNX when it kept dev accuracy
{extraction}  - name: FallbackClassifier
    threshold: {threshold}{why}"""


REFIT_CHOICES = ("auto", "always", "never")
# auto refits teachers of at most this many training + dev sentences: there the dev share is most
# of what the refit adds (benchmarks/results/refit.md), and the refit's minutes stay few; a
# 10,000-sentence teacher takes ~8 minutes on 2 cores and a refit would break the 25-minute budget.
REFIT_MAX_SENTENCES = 5_000


def choose_refit(choice: str, n_sentences: int) -> Tuple[bool, str]:
    """(refit the teacher, why) for --teacher-refit and `n_sentences` training + dev sentences."""
    if choice not in REFIT_CHOICES:
        raise UserError(f"teacher refit must be one of {', '.join(REFIT_CHOICES)}, got {choice!r}")
    if choice != "auto":
        return choice == "always", "as configured"
    refit = n_sentences <= REFIT_MAX_SENTENCES
    limit = f"{'at most' if refit else 'over'} {REFIT_MAX_SENTENCES:,}"
    return refit, f"{n_sentences:,} training + dev sentences ({limit})"


# A refit teacher knows its dev sentences and passes that on to the student through its labels (Sara:
# student accuracy 0.904 on the dev share, 0.855 on test), so a dev share the refit saw judges the student
# too kindly: its temperature, fallback map and threshold come out overconfident. Half of the dev share is
# kept out of the refit to judge the student, when that half holds at least JUDGE_MIN sentences
# (docs/benchmarks.md, "The judge share").
JUDGE_SHARE = 0.5
JUDGE_MIN = 60


def refit_and_judge_files(dev_file: Path, refit: bool, seed: int) -> Tuple[Path, Path]:
    """(the dev file the teacher picks its epochs on and refits with, the dev file that judges the
    student: its selection, temperature and fallback). Without a refit, or with a dev share too small
    to halve, both are `dev_file`; otherwise its two stratified halves, written next to it."""
    from rasa_kd.formats.nlu_yaml import write_examples
    from rasa_kd.nlu_data.split import stratified_split

    files = dev_file.with_name("dev-refit.yml"), dev_file.with_name("dev-judge.yml")
    for path in files:  # an earlier run's halves would read as this run's
        path.unlink(missing_ok=True)
    if not refit:
        return dev_file, dev_file
    examples = read_examples(dev_file)
    refit_half, judge_half = stratified_split(examples, JUDGE_SHARE, seed)
    if len(judge_half) < JUDGE_MIN:
        logger.info(f"dev share: {len(examples)} sentences, too few to keep {JUDGE_MIN} out of the teacher refit; "
                    f"the student is judged on sentences the teacher saw (its confidences may be optimistic)")
        return dev_file, dev_file
    for path, half in zip(files, (refit_half, judge_half)):
        write_examples(path, half)
    logger.info(f"dev share: {len(refit_half)} sentences for the teacher refit, {len(judge_half)} kept out of it "
                f"to judge the student")
    return files


def has_entities(nlu: Path) -> bool:
    return any(example.entities for example in read_examples(nlu))


@dataclass
class PipelineOptions:
    nlu: Path = option(help="the assistant's Rasa NLU file or folder")
    out: Path = option(help="build folder (re-running resumes in it)")
    test: Optional[Path] = option(None, "held-out test file (default: a stratified split of --nlu)")
    test_fraction: float = option(0.2, "test share when --test is not given")
    dev_fraction: float = option(0.1, "dev share for early stopping, int8 check and recipe choice")
    teacher: Optional[List[str]] = option(None, "teacher backbone: minilm (English), usem (multilingual), mpnet "
                                                "(after `make mpnet`), a local folder or a hub id; repeat for an "
                                                "ensemble (default: chosen by the data: minilm for English, minilm "
                                                "+ usem for other Latin-script data, usem otherwise)",
                                          action="append")
    language: Optional[str] = option(None, "the data's language as Rasa's `language:` key writes it (en, de, th, "
                                           "...); English data gets English word-vector augmentation (default: "
                                           "read from the data alone)")
    preset: str = option(DEFAULT_PRESET, "student recipe: fast, balanced or accurate (docs/user-guide.md, Presets)")
    student: Optional[str] = option(None, "student kind, overriding the preset's", choices=("bilstm", "bert"))
    vocab: Optional[str] = option(None, "bilstm vocabulary, overriding the preset's (wordpieces)",
                                  choices=("wordpieces", "words"))
    epochs: Optional[float] = option(None, "most student epochs, overriding the preset's (it stops earlier when "
                                           "dev stops improving)")
    augment: str = option("auto", "augmentation method(s): rules, lm, rules,lm, or auto (half the sentences from "
                                  "the LM for English data of at most 500 training sentences when SmolLM2 is "
                                  "installed, rules otherwise). lm: SmolLM2 fine-tuned with the intent as a prefix, "
                                  "after `rasa-kd install smollm2`")
    outliers: str = option(OUTLIERS_AUTO, "generic sentences from other domains in the transfer set, trained "
                                          "toward a flat distribution so that the student is unsure off its domain "
                                          "(outlier exposure): auto (the packaged English corpus for English data), "
                                          "none, or a text file of one sentence per line")
    size: Optional[int] = option(None, "new transfer sentences (default: the preset's rule, 10x the training "
                                       "sentences within 10k-40k for balanced)")
    seed: int = option(42, "random seed for every stage")
    teacher_refit: str = option("auto", "fine-tune the teacher once more on the training and dev sentences "
                                        "together, for the epochs the dev share picked: auto (when the training "
                                        f"file has at most {REFIT_MAX_SENTENCES:,} sentences), always or never; "
                                        f"half of a dev share of {2 * JUDGE_MIN} or more sentences stays out of "
                                        "the refit and judges the student: its selection, temperature and "
                                        "fallback (benchmarks/results/refit.md)", choices=REFIT_CHOICES)
    entities: bool = option(True, "--no-entities: intents only. By default data with entities gets one student for "
                                  "both: the teacher learns a tag head, the student a token head (intents and "
                                  "entities from one small model; benchmarks/results/entities.md)",
                            flags=("--no-entities",), action="store_false")
    labelling: str = option(DEFAULT_LABELLING, "which word pieces the teacher's tag head learns: all, or first "
                                               "(each word's first piece; not for text without spaces)",
                            choices=LABELLINGS)
    unknown_score: str = option(DEFAULT_SCORE, "the unknown-intent score the student's confidences carry, so that "
                                               "Rasa's FallbackClassifier catches messages no intent covers "
                                               f"(`rasa-kd fallback --score`: {', '.join(SCORES)}, several joined "
                                               "by +), or off")
    allow_unknown_labels: bool = option(False, "score --test intents that --nlu lacks as errors (default: stop "
                                               "before the first stage, naming them)")
    fresh: bool = option(False, "re-run every stage, ignoring what earlier runs recorded")
    quiet: bool = option(False, "no progress bars")


def recommended_snippet(student: Path, train_file: Path, entities: bool = PipelineOptions.entities) -> str:
    """What `rasa-kd pipeline` recommends for `student` (`entities`: its option): data with entities
    gets the student's own entities, or with --no-entities the CRF on its token vectors."""
    return config_snippet(student, has_entities(train_file), joint=entities)


def student_options(options: PipelineOptions, preset: Preset, labelled: Path, dev: Path, student: Path,
                    teacher: Path):
    overrides = {key: getattr(options, key) for key in ("student", "vocab", "epochs")
                 if getattr(options, key) is not None}
    return distil_options(preset, transfer=labelled, dev=dev, out=student, teacher=teacher,
                          seed=options.seed, **overrides)


def distil_into(options, work_root: Path, fresh: bool = False) -> None:
    """Distil with a work folder named by the recipe and the transfer set's content: the same
    options on the same data resume, anything else starts afresh in its own folder; the
    work folders go once the package is written."""
    from rasa_kd.students import distil

    record = [as_record(options), input_fingerprint([Path(options.transfer)])]
    work = work_root / f".distil-{hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]}"
    for stale in work_root.glob(".distil-*"):
        if stale != work:
            shutil.rmtree(stale, ignore_errors=True)
    distil.distil(dataclasses.replace(options, work=work, fresh=fresh))
    shutil.rmtree(work, ignore_errors=True)


def english_data(picked, train: Sequence, language: Optional[str]) -> bool:
    """Whether the training data is English, as the teacher choice read it (a configured teacher
    reads nothing: then it is read here)."""
    from rasa_kd.teachers import choice

    profile = picked.profile or choice.profile_of([e.text for e in train], language)
    return profile.english


def build_student(stages: Stages, options: PipelineOptions, train_file: Path, dev_file: Path,
                  exclude: Sequence[Path] = ()) -> Tuple[List[Path], Path]:
    """teacher -> augment -> label -> distil -> export into `options.out`, on train/dev NLU
    files; `exclude`: further files whose sentences the transfer set must not contain.
    Returns (the teacher folders, the student package). `rasa-kd pipeline` and the Rasa
    component that distils inside `rasa train` both build their student here."""
    from rasa_kd.students import export, fallback
    from rasa_kd.teachers import choice, fine_tune
    from rasa_kd.transfer import augment, label

    out, preset = options.out, get_preset(options.preset)
    transfer, labelled, student = out / "transfer", out / "transfer-labelled", out / "student"
    inputs = [train_file, dev_file, *exclude]
    train = read_examples(train_file)
    picked = choice.choose_teachers([e.text for e in train], options.language, options.teacher)
    logger.info(f"teacher: {' + '.join(picked.teachers)} ({picked.reason})")
    out.mkdir(parents=True, exist_ok=True)
    (out / CHOICE_FILE).write_text(json.dumps(picked.record(), indent=1) + "\n", encoding="utf-8")
    backbones = picked.teachers
    teacher_dirs = [out / "teacher"] if len(backbones) == 1 else [out / f"teacher-{i}" for i in range(len(backbones))]
    refit, why = choose_refit(options.teacher_refit, len(train) + len(read_examples(dev_file)))
    logger.info(f"teacher refit on training + dev sentences: {'yes' if refit else 'no'} ({why})")
    teacher_dev, judge_dev = refit_and_judge_files(dev_file, refit, options.seed)
    for backbone, folder in zip(backbones, teacher_dirs):
        teacher_options = fine_tune.TeacherOptions(train=train_file, dev=teacher_dev, model=backbone, out=folder,
                                                 seed=options.seed, quiet=options.quiet,
                                                 entities="auto" if options.entities else "off",
                                                 labelling=options.labelling, refit=refit)
        stages.run_options(folder.name, teacher_options, inputs, folder, fine_tune.train_from_options)
    size = options.size if options.size is not None else preset.transfer_size(len(train))
    english = options.augment == augment.AUTO and english_data(picked, train, options.language)  # only auto reads it
    recipe = augment.choose_augmentation(options.augment, len(train), english)
    logger.info(f"augment: {recipe.method}{' (intent-conditional LM)' if recipe.conditional else ''} ({recipe.reason})")
    augment_options = augment.AugmentOptions(method=recipe.method, conditional=recipe.conditional, train=train_file,
                                             out=transfer, size=size,
                                             exclude=[dev_file, *exclude], seed=options.seed, quiet=options.quiet,
                                             outliers=options.outliers,
                                             language=options.language,
                                             segmenter=augment.segmenter_for([e.text for e in train], backbones[0]))
    stages.run_options("augment", augment_options, inputs, transfer, augment.augment)
    label_options = label.LabelOptions(teacher=teacher_dirs, transfer=transfer, out=labelled, quiet=options.quiet)
    stages.run_options("label", label_options, [transfer, *teacher_dirs], labelled, label.label)
    distil_opts = student_options(options, preset, labelled, judge_dev, student, teacher_dirs[0])
    stages.run_options("distil", distil_opts, [labelled, judge_dev], student,
                       lambda o: distil_into(o, out, fresh=stages.fresh))
    export_options = export.ExportOptions(model=student, quantize=True, data=dev_file,
                                          int8_max_drop=preset.int8_max_drop)
    stages.run_options("export", export_options, [student / "model.safetensors"], student / "model.int8.onnx",
                       export.export_from_options)
    if options.unknown_score != UNKNOWN_SCORE_OFF:
        fallback_options = fallback.FallbackOptions(model=student, train=train_file, dev=judge_dev,
                                                    score=options.unknown_score)
        stages.run_options("fallback", fallback_options, [student / "model.safetensors", train_file, judge_dev],
                           student / FALLBACK, fallback.fallback_from_options)
    return teacher_dirs, student


def check_test_intents(options: PipelineOptions) -> None:
    """Before any stage runs: test intents the training data lacks stop the run with one line
    (they would only be found at evaluation, after every stage), or with --allow-unknown-labels
    are scored as errors, said in one line."""
    if not options.test:
        return
    if not Path(options.test).exists():
        raise UserError(f"{options.test}: test file not found")
    known = {example.intent for example in read_examples(options.nlu)}
    unknown = sorted({example.intent for example in read_examples(options.test)} - known)
    if not unknown:
        return
    named = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
    if not options.allow_unknown_labels:
        raise UserError(f"{options.test}: intents that {options.nlu} lacks: {named}; no model can predict them "
                        f"(add --allow-unknown-labels to score them as errors)")
    logger.warning(f"{options.test}: intents that {options.nlu} lacks ({named}) are scored as errors")


def run_pipeline(options: PipelineOptions) -> Dict:
    from rasa_kd.evaluation import evaluate
    from rasa_kd.nlu_data import split

    get_preset(options.preset)  # a wrong name stops here, before the first stage
    check_test_intents(options)
    out: Path = options.out
    data = out / "data"
    stages = Stages(out, options.fresh)
    split_options = split.SplitOptions(nlu=options.nlu, out=data, seed=options.seed, dev_fraction=options.dev_fraction,
                                       test_fraction=0.0 if options.test else options.test_fraction)
    stages.run_options("split", split_options, [options.nlu], data, split.split_from_options)
    test_file = Path(options.test or data / "test.yml")
    teacher_dirs, student = build_student(stages, options, data / "train.yml", data / "dev.yml", [test_file])
    results = {}
    for name, model in (("teacher", teacher_dirs[0]), ("student", student)):
        metrics_file = out / f"metrics-{name}.json"
        description = {"model": str(model), "data": str(test_file), "runtime": "auto",
                       **({"allow_unknown_labels": True} if options.allow_unknown_labels else {})}
        stages.run(f"evaluate-{name}", description, [model, test_file], metrics_file,
                   lambda m=model, f=metrics_file: evaluate.evaluate(
                       m, test_file, f, allow_unknown_labels=options.allow_unknown_labels))
        results[name] = json.loads(metrics_file.read_text())
    logger.info("\nstage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.timings.items()))
    snippet = recommended_snippet(student, data / "train.yml", options.entities)
    logger.info(f"\nAdd the student to your config.yml:\n\n{snippet}\n")
    return {"timings": stages.timings, "metrics": results, "student": str(student)}
