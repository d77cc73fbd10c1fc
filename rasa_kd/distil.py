"""`rasa-kd distil`: train a student on a labelled transfer set (Tang et al. 2019; Sučík 2020).

Students:
  bilstm  embeddings -> 1-layer BiLSTM (300 units per direction) -> max or last-state
          pooling -> fully-connected 400 (ReLU, dropout) -> logits. Vocabulary
          `wordpieces` (the teacher's tokenizer and input embeddings; any language the
          teacher knows) or `words` (pretrained word vectors, default GloVe 6B 50-d,
          unknown words share a trained [UNK] vector). Embedding modes (Kim 2014):
          static (frozen), non-static (trained), multichannel (both, concatenated).
  bert    a down-scaled BERT (5 layers, hidden 204, 3 heads, intermediate 750) on the
          teacher's wordpieces; the teacher's embeddings reach the student's width by a
          learned linear projection (initialised by PCA) or by PCA alone;
          --init-from-teacher copies the teacher's layers when the widths match.

Losses: mse on logits (default); ce = soft cross-entropy at --temperature T (times T²);
--hard-weight α mixes in cross-entropy on the gold intents of the original sentences.

Training runs `transformers.Trainer`, scores the dev file every epoch, keeps the best
epoch (--best-metric) and resumes from the last checkpoint when re-run with the same
settings (--fresh starts over). Work folder (default OUT.work): init/ (the untrained
student), checkpoints/checkpoint-N/ (Trainer checkpoints), recipe.json.

Several processes: under `torchrun --nproc_per_node N -m rasa_kd.cli distil ...` or
`accelerate launch -m rasa_kd.cli distil ...` the Trainer trains data-parallel (each
process a share of every batch; --batch-size is per process); the main process builds
the initial student and writes checkpoints and the package (see rasa_kd.distributed).

Output: the student package OUT (written atomically): student.json, model.safetensors
and vocab.txt (words) or the teacher's tokenizer files (wordpieces); see
`rasa_kd.students.package` for the format.
"""
import argparse
import dataclasses
import json
import shutil
import time
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import Dict, List, Optional

from rasa_kd.errors import UserError
from rasa_kd.options import UNSET, add_options, as_record, check_required, from_namespace, option
from rasa_kd.presets import PRESET_NAMES

HELP = "train a student (BiLSTM or small BERT) on a labelled transfer set; writes a student package"
# bilstm: 1e-3 underfits in the few hundred steps of a small transfer set (demo test 0.763 vs 0.797 at 5e-3;
# Sara with gold logits 0.543 vs 0.768).
LEARNING_RATES = {"bilstm": 5e-3, "bert": 3e-4}
HIDDEN_SIZES = {"bilstm": 150, "bert": 204}
FILE_FIELDS = ("transfer", "dev", "test", "out", "work", "teacher", "force", "fresh")
RESULT_KEYS = ("transfer", "transfer_sentences", "transfer_sources", "dev", "test", "best_epoch", "dev_history",
               "training_seconds")
FILES, STUDENT, TRAINING = "files", "student", "training"


@dataclass
class DistilOptions:
    """Everything `rasa-kd distil` needs. The field defaults are the `balanced` preset
    (see `rasa_kd.presets`); the recipe recorded in student.json is these fields."""

    transfer: Path = option(help="labelled transfer set (Arrow folder from `rasa-kd label`)", group=FILES)
    dev: Path = option(help="dev NLU YAML, scored every epoch to pick the best one", group=FILES)
    out: Path = option(help="student package folder to write (must be new or empty)", group=FILES)
    test: Optional[Path] = option(None, "optional test NLU YAML, scored once at the end (into student.json)",
                                  group=FILES)
    work: Optional[Path] = option(None, "work folder for checkpoints (default OUT.work; kept for resuming)",
                                  group=FILES)
    teacher: Optional[Path] = option(None, "teacher folder (default: the first teacher in the transfer set's "
                                           "label.json)", group=FILES)
    force: bool = option(False, "replace an output folder that has content", group=FILES)
    fresh: bool = option(False, "delete the work folder's checkpoints and start over", group=FILES)
    preset: str = option("balanced", "named recipe whose values the other options below start from: "
                                     "fast, balanced or accurate (see README, Presets)", group=STUDENT,
                         choices=PRESET_NAMES)
    student: str = option("bilstm", "architecture", group=STUDENT, choices=("bilstm", "bert"))
    vocab: str = option("wordpieces", "bilstm vocabulary: the teacher's wordpieces (any language the teacher "
                                      "knows) or words with pretrained vectors", group=STUDENT,
                        choices=("wordpieces", "words"))
    prune_vocab: bool = option(True, "keep every wordpiece/word of the teacher's vocabulary, not only those seen "
                                     "in the transfer set (default: pruned)", group=STUDENT,
                               flags=("--no-prune-vocab",), action="store_false")
    prune_min_count: int = option(1, "pruning keeps a wordpiece or word seen at least this often in the "
                                     "transfer set", group=STUDENT)
    prune_keep_common: int = option(10_000, "wordpiece pruning also keeps the teacher vocabulary's N most common "
                                       "pieces, so frequent words missing from the transfer set keep their own "
                                       "embedding", group=STUDENT)
    prune_keep_characters: bool = option(True, "pruning drops one-character wordpieces not seen in the transfer "
                                               "set too, so unseen words become [UNK] rather than being spelt "
                                               "letter by letter (default: kept)", group=STUDENT,
                                         flags=("--prune-characters",), action="store_false")
    embedding_dim: Optional[int] = option(128, "embedding width: the pretrained table projected on its top D "
                                               "principal components (0: the pretrained width)", group=STUDENT)
    vectors: str = option("glove50", "words: glove50 or a word2vec/GloVe text file", group=STUDENT)
    vectors_limit: Optional[int] = option(None, "words: read only the first N vectors of the file (default all)",
                                          group=STUDENT)
    vocab_size: int = option(50_000, "words: largest vocabulary; unpruned, transfer-set words first, then the most "
                                     "frequent pretrained words", group=STUDENT)
    min_count: int = option(2, "words: a transfer-set word without a pretrained vector joins the vocabulary from "
                               "this count", group=STUDENT)
    embedding_mode: str = option("multichannel", "bilstm embeddings: frozen, trained, or both concatenated",
                                 group=STUDENT, choices=("static", "non-static", "multichannel"))
    hidden_size: Optional[int] = option(None, "bilstm units per direction; bert hidden size (when not given: "
                                             "150 bilstm, 204 bert)", group=STUDENT)
    fc_size: int = option(400, "bilstm fully-connected layer", group=STUDENT)
    pooling: str = option("max", "bilstm pooling over positions", group=STUDENT, choices=("max", "last"))
    dropout: float = option(0.1, "dropout", group=STUDENT)
    layers: int = option(5, "bert layers", group=STUDENT)
    heads: int = option(3, "bert attention heads", group=STUDENT)
    intermediate: int = option(750, "bert feed-forward size", group=STUDENT)
    projection: str = option("linear", "bert: teacher embeddings -> student width by a learned linear layer "
                                       "(PCA-initialised) or PCA", group=STUDENT, choices=("linear", "pca"))
    init_from_teacher: bool = option(False, "bert: copy the teacher's embeddings and evenly spaced layers "
                                            "(widths must match the teacher's)", group=STUDENT)
    max_length: int = option(64, "tokens per sentence, longer ones are cut", group=STUDENT)
    loss: str = option("mse", "mse on logits or soft cross-entropy", group=TRAINING, choices=("mse", "ce"))
    temperature: float = option(1.0, "ce: softmax temperature T; the loss is scaled by T²", group=TRAINING)
    hard_weight: float = option(0.0, "weight α of cross-entropy on gold intents of original sentences: "
                                     "(1-α)·soft + α·hard", group=TRAINING)
    hidden_weight: float = option(0.0, "bert: weight β of an MSE between the student's last hidden states "
                                       "(through a learned projection) and the teacher's last layer; runs the "
                                       "teacher on every batch", group=TRAINING)
    epochs: float = option(8, "most epochs over the transfer set", group=TRAINING)
    patience: int = option(3, "stop after N epochs without dev improvement (0: never)", group=TRAINING)
    transfer_limit: Optional[int] = option(None, "train on the first N transfer sentences only: the originals, "
                                                 "then augmented ones in the order they were made (default: all)",
                                           group=TRAINING)
    originals_repeat: int = option(1, "times each original (training) sentence is in what the student trains on; "
                                      "0 leaves them out, 5 weighs them up in a large transfer set", group=TRAINING)
    batch_size: int = option(64, "training batch size", group=TRAINING)
    eval_batch_size: int = option(256, "dev batch size", group=TRAINING)
    learning_rate: Optional[float] = option(None, "AdamW learning rate (when not given: 5e-3 bilstm, 3e-4 bert)",
                                            group=TRAINING)
    weight_decay: float = option(0.0, "AdamW weight decay", group=TRAINING)
    warmup_ratio: float = option(0.0, "share of steps for linear warm-up", group=TRAINING)
    lr_scheduler: str = option("linear", "transformers scheduler name", group=TRAINING)
    best_metric: str = option("accuracy", "dev metric that picks the best epoch", group=TRAINING,
                              choices=("accuracy", "micro_f1", "macro_f1", "mcc"))
    seed: int = option(42, "random seed", group=TRAINING)


def add_arguments(parser) -> None:
    parser.description = __doc__
    add_options(parser, DistilOptions, track_given=True)


def options_from(namespace) -> DistilOptions:
    """The preset the namespace names (default balanced), overridden by the flags given."""
    from rasa_kd.presets import distil_options

    preset = namespace.preset if namespace.preset is not UNSET else DistilOptions.preset
    student = namespace.student if namespace.student is not UNSET else DistilOptions.student
    return from_namespace(DistilOptions, namespace, base=distil_options(preset, student=student))


def parse(argv: List) -> DistilOptions:
    """`DistilOptions` from a list of command-line strings (for scripts and tests)."""
    parser = argparse.ArgumentParser(prog="rasa-kd distil")
    add_arguments(parser)
    return options_from(parser.parse_args([str(a) for a in argv]))


def check_arguments(args) -> None:
    if not 0 <= args.hard_weight <= 1:
        raise UserError(f"--hard-weight must be between 0 and 1, got {args.hard_weight}")
    if args.hidden_weight < 0 or (args.hidden_weight and args.student != "bert"):
        raise UserError(f"--hidden-weight must be at least 0 and needs --student bert, got {args.hidden_weight}")
    if args.temperature <= 0:
        raise UserError(f"--temperature must be positive, got {args.temperature}")
    for name in ("epochs", "batch_size", "max_length", "vocab_size", "transfer_limit", "prune_min_count"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if args.originals_repeat < 0:
        raise UserError(f"--originals-repeat must be at least 0, got {args.originals_repeat}")
    if args.prune_keep_common < 0:
        raise UserError(f"--prune-keep-common must be at least 0, got {args.prune_keep_common}")
    if args.embedding_dim is not None and args.embedding_dim < 0:
        raise UserError(f"--embedding-dim must be at least 0, got {args.embedding_dim}")


def resolved(options: DistilOptions) -> DistilOptions:
    """The options with the architecture-dependent defaults filled in."""
    return dataclasses.replace(options, learning_rate=options.learning_rate or LEARNING_RATES[options.student],
                               hidden_size=options.hidden_size or HIDDEN_SIZES[options.student])


def recipe_of(args) -> Dict:
    from rasa_kd import distributed

    recipe = {key: value for key, value in as_record(args).items() if key not in FILE_FIELDS}
    recipe["vectors"] = recipe["vectors"] if args.student == "bilstm" and args.vocab == "words" else None
    # a checkpoint's steps per epoch depend on the number of processes: another number starts afresh
    recipe["processes"] = distributed.world_size()
    return recipe


def prepare_work(work: Path, recipe: Dict, transfer_path: Path, fresh: bool) -> None:
    """Make the work folder; refuse to resume one that was made with other settings. Under a
    launcher every process checks and the main process writes."""
    from rasa_kd import distributed

    recipe_file = work / "recipe.json"
    stamp = {"transfer": str(transfer_path.resolve()), **recipe}
    if recipe_file.is_file() and not fresh:
        old = json.loads(recipe_file.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(old) | set(stamp) if old.get(k) != stamp.get(k))
        if changed:
            raise UserError(f"{work}: work folder of a run with other settings ({', '.join(changed)}); "
                            f"re-run with the same settings to resume, or add --fresh to start over")
    distributed.barrier()  # all have read recipe.json before the main process rewrites it
    if not distributed.is_main():
        return
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def initial_student(args, transfer, teacher, work: Path):
    """(tokenizer, model, hf_tokenizer): from <work>/init when resuming, else built and saved there."""
    from rasa_kd.students import build, package
    from rasa_kd.students.tokenizers import load_tokenizer

    init = work / "init"
    if (init / package.MANIFEST).is_file():
        manifest = package.read_manifest(init)
        model = package.build_model(manifest)
        package.load_weights(model, init)
        unpruned_wordpieces = manifest["tokenizer"]["kind"] == "wordpieces" and not manifest["tokenizer"].get("pruned")
        hf_tokenizer = teacher.tokenizer if unpruned_wordpieces else None
        return load_tokenizer(init, manifest["tokenizer"]), model, hf_tokenizer
    from transformers import set_seed

    set_seed(args.seed)
    if args.student == "bilstm":
        tokenizer, model, hf_tokenizer = build.build_bilstm(args, len(transfer.labels), teacher, transfer)
    else:
        tokenizer, model, hf_tokenizer = build.build_small_bert(args, len(transfer.labels), teacher, transfer)
    tmp = work / "init.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    package.save_package(tmp, model, tokenizer, transfer.labels, hf_tokenizer=hf_tokenizer)
    tmp.rename(init)
    return tokenizer, model, hf_tokenizer


def find_teacher(args, transfer):
    """The Teacher (or None for word BiLSTMs without a teacher folder) and its path."""
    from rasa_kd.students.build import Teacher

    path = args.teacher or (transfer.teacher_paths()[0] if transfer.teacher_paths() else None)
    needs_teacher = not (args.student == "bilstm" and args.vocab == "words")
    if path is None:
        if needs_teacher:
            raise UserError(f"{transfer.path}: label.json names no teacher; give the teacher folder with --teacher")
        return None, None
    if not Path(path).is_dir():
        if needs_teacher:
            raise UserError(f"{path}: teacher folder not found (named in {transfer.path}/label.json); use --teacher")
        return None, str(path)
    teacher = Teacher(Path(path))
    teacher_labels = teacher.labels()
    if needs_teacher and teacher_labels is not None and teacher_labels != transfer.labels:
        raise UserError(f"{path}/labels.json does not match {transfer.path}/labels.json (names or order differ)")
    return teacher, str(path)


def logits_on(model, tokenizer, examples, labels):
    """Logits [n, len(labels)] of an in-memory model on NLU examples."""
    from rasa_kd.students.runtime import Student, TorchBackend

    student = Student(Path("."), {"labels": labels, "architecture": model.architecture}, tokenizer, TorchBackend(model))
    return student.logits([e.text for e in examples])


def scores_of(logits, examples, labels) -> Dict[str, float]:
    """Classification scores of `logits` against the examples' intents."""
    from rasa_kd.metrics import classification_scores

    return classification_scores([e.intent for e in examples], [labels[i] for i in logits.argmax(axis=1)])


def calibration_on(logits, examples, labels) -> Dict[str, float]:
    """Temperature scaling fitted on `examples` (dev), with NLL and ECE before and after."""
    from rasa_kd.calibration import calibrate

    return {**calibrate(logits, [labels.index(e.intent) for e in examples]), "fitted_on": "dev"}


def train(args, transfer, tokenizer, model, dev, work: Path, teacher=None, callbacks=()):
    """Run the Trainer (resuming from the last checkpoint) and return it with the best model loaded."""
    from transformers import EarlyStoppingCallback

    from rasa_kd.students import data, training

    train_set = data.training_dataset(transfer, tokenizer)
    callbacks = list(callbacks) + ([EarlyStoppingCallback(args.patience)] if args.patience else [])
    if args.hidden_weight:
        model = training.hidden_state_wrapper(model, teacher.model, getattr(tokenizer, "teacher_ids", None))
    trainer = training.make_trainer_class()(
        model=model, args=training.training_arguments(args, work / "checkpoints"),
        train_dataset=train_set, eval_dataset=data.examples_dataset(dev, tokenizer, transfer.labels),
        data_collator=data.Collator(tokenizer.pad_id), compute_metrics=training.metrics_function(transfer.labels),
        callbacks=callbacks, loss=args.loss, temperature=args.temperature, hard_weight=args.hard_weight,
        hidden_weight=args.hidden_weight,
    )
    resume = training.last_checkpoint(work / "checkpoints")
    if resume:
        print(f"resuming from {resume}", flush=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="mtime may not be reliable")
        trainer.train(resume_from_checkpoint=resume)
    return trainer


def best_epoch(trainer) -> Optional[float]:
    best = trainer.state.best_model_checkpoint
    for entry in trainer.state.log_history:
        if best and entry.get("step") == int(best.rsplit("-", 1)[-1]) and "epoch" in entry:
            return entry["epoch"]
    return None


def dev_history(trainer) -> List[Dict[str, float]]:
    """Dev scores after each evaluation: [{"epoch": 1.0, "accuracy": ..., ...}, ...]."""
    return [{"epoch": entry["epoch"], **{key[len("eval_"):]: value for key, value in entry.items()
                                          if key.startswith("eval_") and not key.endswith(("runtime", "per_second"))}}
            for entry in trainer.state.log_history if "eval_loss" in entry]


def with_originals_repeated(dataset, repeat: int, path: Path):
    """The transfer rows with each original sentence `repeat` times (0: none), originals first."""
    if repeat == 1 or "source" not in dataset.column_names:
        return dataset
    sources = dataset.data.column("source").to_pylist()
    originals = [i for i, source in enumerate(sources) if source == "original"]
    others = [i for i, source in enumerate(sources) if source != "original"]
    if not others and repeat == 0:
        raise UserError(f"{path}: --originals-repeat 0 leaves no sentences (the transfer set holds only originals)")
    # flattened: code that reads the Arrow table (`dataset.data`) must see the repeats
    return dataset.select(originals * repeat + others).flatten_indices()


def distil(args: DistilOptions, callbacks=()) -> Dict:
    """The whole stage; returns the written student.json (in the main process; the others of
    a launcher return {}). `callbacks`: extra TrainerCallbacks."""
    from rasa_kd import distributed
    from rasa_kd.outputs import atomic_output_dir, check_output_dir
    from rasa_kd.students import build, data, package

    check_required(args)
    check_arguments(args)
    args = resolved(args)
    check_output_dir(args.out, args.force)
    transfer = data.open_transfer(args.transfer)
    if args.transfer_limit and args.transfer_limit < len(transfer.dataset):
        transfer.dataset = transfer.dataset.select(range(args.transfer_limit))
    original_texts = transfer.original_texts()  # hashed even when left out: the teacher trained on them
    transfer.dataset = with_originals_repeated(transfer.dataset, args.originals_repeat, args.transfer)
    dev = data.read_split(args.dev, transfer.labels)
    test = data.read_split(args.test, transfer.labels)
    teacher, teacher_path = find_teacher(args, transfer)
    work = args.work or args.out.with_name(args.out.name + ".work")
    recipe = recipe_of(args)
    prepare_work(work, recipe, args.transfer, args.fresh)
    if distributed.launched():  # torchrun would give each process one thread
        import torch

        torch.set_num_threads(distributed.threads_per_process())
    started = time.time()
    with distributed.main_first():  # the others load the student the main process built and saved
        tokenizer, model, hf_tokenizer = initial_student(args, transfer, teacher, work)
    print(f"{args.student} student: {package.count_parameters(model)['total']:,} parameters, "
          f"{len(transfer.dataset):,} transfer sentences, {len(transfer.labels)} labels", flush=True)
    trainer = train(args, transfer, tokenizer, model, dev, work, teacher, callbacks)
    if not distributed.is_main():  # trained data-parallel; the main process writes the package
        return {}
    # Trainer may have moved the model to a GPU; scoring, calibration and the package run on CPU
    model = getattr(trainer.model, "student", trainer.model).cpu()
    dev_logits = logits_on(model, tokenizer, dev, transfer.labels)  # scored and calibrated on one pass
    metrics = {"dev": scores_of(dev_logits, dev, transfer.labels)}
    calibration = calibration_on(dev_logits, dev, transfer.labels)
    print(f"calibration: temperature {calibration['temperature']:.3f} (dev ECE {calibration['ece_before']:.3f} -> "
          f"{calibration['ece_after']:.3f})", flush=True)
    if test:
        metrics["test"] = scores_of(logits_on(model, tokenizer, test, transfer.labels), test, transfer.labels)
    recipe.update(transfer=str(args.transfer), transfer_sentences=len(transfer.dataset),
                  transfer_sources=transfer.source_counts(), dev=str(args.dev), test=str(args.test) if test else None,
                  best_epoch=best_epoch(trainer), dev_history=dev_history(trainer),
                  train_steps=trainer.state.global_step,
                  training_seconds=round(time.time() - started, 1))
    with atomic_output_dir(args.out, args.force) as folder:
        manifest = package.save_package(folder, model, tokenizer, transfer.labels, hf_tokenizer=hf_tokenizer,
                                        teacher=build.teacher_identity(teacher_path), recipe=recipe, metrics=metrics)
        manifest = package.update_manifest(folder, calibration=calibration)
        package.write_training_hashes(folder, original_texts)
    print_summary(args.out, metrics)
    return manifest


def print_summary(out: Path, metrics: Dict) -> None:
    for split, scores in metrics.items():
        print(f"{split}: accuracy {scores['accuracy']:.4f}  micro-F1 {scores['micro_f1']:.4f}  "
              f"macro-F1 {scores['macro_f1']:.4f}  MCC {scores['mcc']:.4f}  (n={scores['n']})")
    print(f"student package: {out}")


def run(args) -> int:
    distil(options_from(args))
    return 0
