"""`rasa-kd distil`: train a student on a labelled transfer set (Tang et al. 2019; Sučík 2020).

Students (sizes and their defaults: `rasa_kd.students.config`):
  bilstm  embeddings -> 1-layer BiLSTM -> max or last-state pooling -> fully-connected
          (ReLU, dropout) -> logits. Vocabulary
          `wordpieces` (the teacher's tokenizer and input embeddings; any language the
          teacher knows) or `words` (pretrained word vectors, default GloVe 6B 50-d,
          unknown words share a trained [UNK] vector). Embedding modes (Kim 2014):
          static (frozen), non-static (trained), multichannel (both, concatenated).
  bert    a down-scaled BERT on the teacher's wordpieces; the teacher's embeddings reach the student's width by a
          learned linear projection (initialised by PCA) or by PCA alone;
          --init-from-teacher copies the teacher's layers when the widths match.

Losses: mse on logits (default); ce = soft cross-entropy at --temperature T (times T²);
--hard-weight α mixes in cross-entropy on the gold intents of the original sentences.

Training runs `transformers.Trainer`, scores the dev file every epoch, keeps the best
epoch (--best-metric) and stops after --patience epochs without a better one; with a small
dev file (--selection auto; distil_options.SMALL_DEV) the epochs are also scored on a held-out
share of the augmented sentences labelled with the teacher's intent, as one flipped sentence
of 30 is 3 points. It resumes from the last checkpoint when re-run with the same
settings (--fresh starts over). Work folder (default OUT.work): init/ (the untrained
student), checkpoints/checkpoint-N/ (Trainer checkpoints), recipe.json.

Several processes: under `torchrun --nproc_per_node N -m rasa_kd.cli distil ...` or
`accelerate launch -m rasa_kd.cli distil ...` the Trainer trains data-parallel (each
process a share of every batch; --batch-size is per process); the main process builds
the initial student and writes checkpoints and the package (see rasa_kd.distributed).

Output: the student package OUT (written atomically): student.json, model.safetensors
and vocab.txt (words) or the teacher's tokenizer files (wordpieces); see
`rasa_kd.formats.student_package` for the format.
"""
import argparse
import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch

from transformers import EarlyStoppingCallback, set_seed

from rasa_kd import distributed
from rasa_kd.errors import UserError
from rasa_kd.evaluation.calibration import calibrate
from rasa_kd.evaluation.metrics import classification_scores, piece_tag_scores
from rasa_kd.formats import student_package
from rasa_kd.formats.outputs import atomic_output_dir, check_output_dir
from rasa_kd.formats.transfer_set import SOURCE, VECTORS, open_transfer, sources_of
from rasa_kd.options import UNSET, add_options, as_record, check_required, from_namespace
from rasa_kd.students import build, data, training
from rasa_kd.students.distil_options import (FILE_FIELDS, HELD_OUT_MAX, HELD_OUT_SHARE, DistilOptions, check,
                                             resolved, selection_for)
from rasa_kd.students.presets import distil_options, get_preset
from rasa_kd.students.runtime import Student, TorchBackend
from rasa_kd.students.tokenizers import load_tokenizer
from rasa_kd.teachers.folder import TeacherFolder

logger = logging.getLogger(__name__)

RESULT_KEYS = ("transfer", "transfer_sentences", "transfer_sources", "dev", "test", "best_epoch", "dev_history",
               "training_seconds")


def options_from(namespace) -> DistilOptions:
    """The preset the namespace names (default balanced), overridden by the flags given."""
    preset = namespace.preset if namespace.preset is not UNSET else DistilOptions.preset
    student = namespace.student if namespace.student is not UNSET else DistilOptions.student
    return from_namespace(DistilOptions, namespace, base=distil_options(preset, student=student))


def parse(argv: List) -> DistilOptions:
    """`DistilOptions` from a list of command-line strings (for scripts and tests)."""
    parser = argparse.ArgumentParser(prog="rasa-kd distil")
    add_options(parser, DistilOptions, track_given=True)
    return options_from(parser.parse_args([str(a) for a in argv]))


def recipe_of(args) -> Dict:
    recipe = {key: value for key, value in as_record(args).items() if key not in FILE_FIELDS}
    recipe["vectors"] = recipe["vectors"] if args.student == "bilstm" and args.vocab == "words" else None
    # a checkpoint's steps per epoch depend on the number of processes: another number starts afresh
    recipe["processes"] = distributed.world_size()
    return recipe


def prepare_work(work: Path, recipe: Dict, transfer_path: Path, fresh: bool) -> None:
    """Make the work folder; refuse to resume one that was made with other settings. Under a
    launcher every process checks and the main process writes."""
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
    init = work / "init"
    if (init / student_package.MANIFEST).is_file():
        manifest = student_package.read_manifest(init)
        model = student_package.build_model(manifest)
        student_package.load_weights(model, init)
        unpruned_wordpieces = manifest["tokenizer"]["kind"] == "wordpieces" and not manifest["tokenizer"].get("pruned")
        hf_tokenizer = teacher.tokenizer if unpruned_wordpieces else None
        return load_tokenizer(init, manifest["tokenizer"]), model, hf_tokenizer

    set_seed(args.seed)
    if args.student == "bilstm":
        tokenizer, model, hf_tokenizer = build.build_bilstm(args, len(transfer.labels), teacher, transfer)
    else:
        tokenizer, model, hf_tokenizer = build.build_small_bert(args, len(transfer.labels), teacher, transfer)
    tmp = work / "init.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    student_package.save_package(tmp, model, tokenizer, transfer.labels, hf_tokenizer=hf_tokenizer)
    tmp.rename(init)
    return tokenizer, model, hf_tokenizer


def find_teacher(options: DistilOptions, transfer) -> Optional[TeacherFolder]:
    """The teacher folder (None for word BiLSTMs that have none): --teacher, else the first
    teacher the transfer set's label.json names."""
    path = options.teacher or (transfer.teacher_paths()[0] if transfer.teacher_paths() else None)
    needs_teacher = not (options.student == "bilstm" and options.vocab == "words")
    if path is None or not Path(path).is_dir():
        if not needs_teacher:
            return None
        if path is None:
            raise UserError(f"{transfer.path}: label.json names no teacher; give the teacher folder with --teacher")
        raise UserError(f"{path}: teacher folder not found (named in {transfer.path}/label.json); use --teacher")
    teacher = TeacherFolder(path)
    if needs_teacher and teacher.labels is not None and teacher.labels != transfer.labels:
        raise UserError(f"{path}/labels.json does not match {transfer.path}/labels.json (names or order differ)")
    return teacher


def logits_on(model, tokenizer, examples, labels):
    """Logits [n, len(labels)] of an in-memory model on NLU examples."""
    student = Student(Path("."), {"labels": labels, "architecture": model.architecture}, tokenizer, TorchBackend(model))
    return student.logits([e.text for e in examples])


def entity_scores_on(model, tokenizer, examples, labels, tags) -> Dict[str, float]:
    """Entity scores per piece of an in-memory tagging model on NLU examples' gold entities."""
    dataset = data.examples_dataset(examples, tokenizer, labels, tags)
    collate = data.Collator(tokenizer.pad_id)
    gold, predicted = [], []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(dataset), 64):
            batch = collate([dataset[i] for i in range(start, min(start + 64, len(dataset)))])
            gold.append(batch["gold_tags"].reshape(-1))
            predicted.append(model(batch["input_ids"], batch["attention_mask"])[3].argmax(dim=-1).reshape(-1))
    return piece_tag_scores(torch.cat(gold).numpy(), torch.cat(predicted).numpy(), tags)


def scores_of(logits, examples, labels) -> Dict[str, float]:
    """Classification scores of `logits` against the examples' intents."""
    return classification_scores([e.intent for e in examples], [labels[i] for i in logits.argmax(axis=1)])


def calibration_on(logits, examples, labels) -> Dict[str, float]:
    """Temperature scaling fitted on `examples` (dev), with NLL and ECE before and after."""
    return {**calibrate(logits, [labels.index(e.intent) for e in examples]), "fitted_on": "dev"}


def train(args, transfer, tokenizer, model, dev, work: Path, teacher=None, callbacks=(), selection: str = "dev"):
    """Run the Trainer (resuming from the last checkpoint) and return it with the best model loaded
    (the last one with selection `last`). `dev`: the examples scored every epoch."""

    train_set = data.training_dataset(transfer, tokenizer, vectors=bool(args.vector_weight))
    stops = args.patience and selection != "last"
    callbacks = list(callbacks) + ([EarlyStoppingCallback(args.patience)] if stops else [])
    if args.hidden_weight:
        model = training.HiddenStateDistillation(model, teacher.base_model, getattr(tokenizer, "teacher_ids", None))
    if args.vector_weight:
        model = training.SentenceVectorDistillation(model, len(transfer.dataset[0][VECTORS]))
    tagging = bool(transfer.tags)
    trainer = training.DistillationTrainer(
        model=model, args=training.training_arguments(args, work / "checkpoints", best=selection != "last",
                                                      tagging=tagging),
        train_dataset=train_set, eval_dataset=data.examples_dataset(dev, tokenizer, transfer.labels, transfer.tags),
        data_collator=data.Collator(tokenizer.pad_id),
        compute_metrics=training.metrics_function(transfer.labels, transfer.tags),
        callbacks=callbacks, loss=args.loss, temperature=args.temperature, hard_weight=args.hard_weight,
        hidden_weight=args.hidden_weight, tag_weight=args.tag_weight, tag_hard_weight=args.tag_hard_weight,
        vector_weight=args.vector_weight,
    )
    resume = training.last_checkpoint(work / "checkpoints")
    if resume:
        logger.info(f"resuming from {resume}")
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
    if repeat == 1 or SOURCE not in dataset.column_names:
        return dataset
    sources = sources_of(dataset)
    originals = [i for i, source in enumerate(sources) if source == "original"]
    others = [i for i, source in enumerate(sources) if source != "original"]
    if not others and repeat == 0:
        raise UserError(f"{path}: --originals-repeat 0 leaves no sentences (the transfer set holds only originals)")
    return dataset.select(originals * repeat + others).flatten_indices()


def distil(args: DistilOptions, callbacks=()) -> Dict:
    """The whole stage; returns the written student.json (in the main process; the others of
    a launcher return {}). `callbacks`: extra TrainerCallbacks."""
    check_required(args)
    check(args)
    get_preset(args.preset)
    args = resolved(args)
    check_output_dir(args.out, args.force)
    transfer = open_transfer(args.transfer, labelled=True)
    if args.vector_weight and VECTORS not in transfer.dataset.column_names:
        raise UserError(f"{args.transfer}: --vector-weight needs the teacher's sentence vectors in the transfer set "
                        f"(label it with `rasa-kd label --vectors`)")
    if args.transfer_limit and args.transfer_limit < len(transfer.dataset):
        transfer.dataset = transfer.dataset.select(range(args.transfer_limit))
    original_texts = transfer.original_texts()  # hashed even when left out: the teacher trained on them
    transfer.dataset = with_originals_repeated(transfer.dataset, args.originals_repeat, args.transfer)
    dev = data.read_split(args.dev, transfer.labels)
    test = data.read_split(args.test, transfer.labels)
    selection = selection_for(args, len(dev))
    held_out = data.hold_out(transfer, HELD_OUT_SHARE, HELD_OUT_MAX, args.seed) if selection == "teacher" else []
    logger.info(f"selection: {selection} ({len(dev)} dev sentences" +
                (f", {len(held_out):,} transfer sentences held out with the teacher's intents)" if held_out else ")"))
    teacher = find_teacher(args, transfer)
    work = args.work or args.out.with_name(args.out.name + ".work")
    recipe = recipe_of(args)
    prepare_work(work, recipe, args.transfer, args.fresh)
    if distributed.launched():  # torchrun would give each process one thread

        torch.set_num_threads(distributed.threads_per_process())
    started = time.time()
    with distributed.main_first():  # the others load the student the main process built and saved
        tokenizer, model, hf_tokenizer = initial_student(args, transfer, teacher, work)
    logger.info(f"{args.student} student: {student_package.count_parameters(model)['total']:,} parameters, "
                f"{len(transfer.dataset):,} transfer sentences, {len(transfer.labels)} labels")
    trainer = train(args, transfer, tokenizer, model, dev + held_out, work, teacher, callbacks, selection)
    if not distributed.is_main():  # trained data-parallel; the main process writes the package
        return {}
    # Trainer may have moved the model to a GPU; scoring, calibration and the package run on CPU
    model = getattr(trainer.model, "student", trainer.model).cpu()
    dev_logits = logits_on(model, tokenizer, dev, transfer.labels)  # scored and calibrated on one pass
    metrics = {"dev": scores_of(dev_logits, dev, transfer.labels)}
    if transfer.tags:
        metrics["dev"].update(entity_scores_on(model, tokenizer, dev, transfer.labels, transfer.tags))
    calibration = calibration_on(dev_logits, dev, transfer.labels)
    logger.info(f"calibration: temperature {calibration['temperature']:.3f} "
                f"(dev ECE {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f})")
    if test:
        metrics["test"] = scores_of(logits_on(model, tokenizer, test, transfer.labels), test, transfer.labels)
    recipe.update(transfer=str(args.transfer), transfer_sentences=len(transfer.dataset),
                  transfer_sources=transfer.source_counts(), dev=str(args.dev), test=str(args.test) if test else None,
                  selection=selection, held_out=len(held_out),
                  best_epoch=best_epoch(trainer) if selection != "last" else trainer.state.epoch,
                  dev_history=dev_history(trainer),
                  train_steps=trainer.state.global_step,
                  training_seconds=round(time.time() - started, 1))
    with atomic_output_dir(args.out, args.force) as folder:
        manifest = student_package.save_package(folder, model, tokenizer, transfer.labels, hf_tokenizer=hf_tokenizer,
                                        teacher=teacher.identity() if teacher else {}, recipe=recipe, metrics=metrics,
                                        tags=transfer.tags)
        manifest = student_package.update_manifest(folder, calibration=calibration)
        student_package.write_training_hashes(folder, original_texts)
    print_summary(args.out, metrics)
    return manifest


def print_summary(out: Path, metrics: Dict) -> None:
    for split, scores in metrics.items():
        logger.info(f"{split}: accuracy {scores['accuracy']:.4f}  micro-F1 {scores['micro_f1']:.4f}  "
                    f"macro-F1 {scores['macro_f1']:.4f}  MCC {scores['mcc']:.4f}  (n={scores['n']})")
    logger.info(f"student package: {out}")
