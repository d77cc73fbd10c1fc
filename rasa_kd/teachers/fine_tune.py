"""`rasa-kd teacher`: fine-tune a BERT-family checkpoint as a sentence (intent) classifier.

Training uses `transformers.Trainer` with `AutoModelForSequenceClassification`,
evaluates on the dev set after every epoch and keeps the weights of the best epoch
(dev micro-F1, with entities the mean of it and entity F1; epochs within one dev sentence
of each other are compared by dev loss);
it stops early after `--patience` epochs without improvement.

Pooling (--pooling): `cls`, the model's own head, or `mean` of the token states; see
`rasa_kd.teachers.pooling`.

Entities (--entities auto; `rasa-kd pipeline` and the component ask for it, this stage alone
defaults to off): when the training data has entity annotations, the teacher also
learns a token-classification head (BIO tags, `rasa_kd.nlu_data.entity_tags`) on the same
forward pass, loss = intent cross-entropy + --tag-weight x tag cross-entropy, and epochs are
chosen on the mean of dev intent micro-F1 and dev entity F1 (`rasa_kd.teachers.tag_head`).

Several processes (`torchrun` / `accelerate launch -m rasa_kd.cli teacher ...`, see
rasa_kd.distributed): the Trainer trains data-parallel, --batch-size per process; the
main process writes the folder.

Output: a teacher folder (written all-or-nothing; format in `rasa_kd.teachers.folder`,
which is also how every later stage loads it: `TeacherFolder(path)`). Its metrics.json
holds the dev scores, epochs, training time, parameter count, dev labelling speed and
the settings used.
"""
import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import datasets
import numpy as np
import torch
import transformers
from sklearn.linear_model import LogisticRegression
from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, PrinterCallback,
                          Trainer, TrainerCallback, TrainingArguments)

from rasa_kd import distributed
from rasa_kd.errors import UserError
from rasa_kd.evaluation.metrics import classification_scores, joint_selection, piece_tag_scores
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.outputs import atomic_output_dir, check_output_dir
from rasa_kd.nlu_data.entity_tags import DEFAULT_LABELLING, IGNORE, LABELLINGS, entity_types, piece_tags, tag_names
from rasa_kd.nlu_data.split import stratified_split  # noqa: F401 - also part of this module's API
from rasa_kd.options import option
from rasa_kd.teachers.folder import (METRICS_FILE, load_tokenizer, predict_logits, predict_tag_logits,
                                     sentence_vectors, write_teacher_files)
from rasa_kd.teachers.pooling import POOLINGS, is_sentence_encoder, linear_head, with_pooling
from rasa_kd.teachers.resources import DEFAULT_TEACHER, hub_error, resolve_model
from rasa_kd.teachers.tag_head import JointTeacher, can_tag

logger = logging.getLogger(__name__)

UNKNOWN_WORDS_LIMIT = 0.20  # share of training words the teacher cannot write before it refuses
# 2e-4 is the best rate measured for MiniLM-L6 and MPNet-base on Sara, but MPNet-base diverges at it on
# CoLA to one class for every sentence, and a tenth of it does not (benchmarks/results/cola.json).
DEFAULT_LR, RETRY_LR_FACTOR = 2e-4, 0.1


FINE_TUNING = "fine-tuning"
ENCODER_MODES = ("fine-tune", "frozen")
ENTITY_MODES = ("auto", "off")
# The frozen encoder's head: L2-regularised logistic regression at C = 10 (issue 30's table:
# USE-multilingual vectors, five languages, 300 training sentences each).
FROZEN_HEAD_C = 10.0


@dataclass
class TeacherSettings:
    """Fine-tuning hyper-parameters; the defaults are the best recipe measured on Sara."""

    epochs: float = option(6, "maximum epochs", group=FINE_TUNING)
    lr: Optional[float] = option(None, f"peak learning rate (default {DEFAULT_LR:g}; if the teacher then predicts "
                                       f"one class for the whole dev set, it is trained again at a tenth of that)",
                                 group=FINE_TUNING)
    batch_size: int = option(32, "training batch size", group=FINE_TUNING)
    max_length: int = option(64, "maximum tokens per sentence, longer ones are truncated", group=FINE_TUNING)
    warmup: float = option(0.1, "share of steps with linear learning-rate warm-up", group=FINE_TUNING)
    weight_decay: float = option(0.01, "AdamW weight decay", group=FINE_TUNING)
    seed: int = option(42, "random seed", group=FINE_TUNING)
    pooling: str = option("mean", "sentence vector: cls (the model's [CLS] pooler) or mean of token states; "
                                  "a sentence encoder (usem) always uses its own", choices=POOLINGS, group=FINE_TUNING)
    encoder: str = option("fine-tune", "fine-tune the whole model, or keep it frozen and fit only its linear head "
                                       "(logistic regression on the sentence vectors; no epochs)",
                          choices=ENCODER_MODES, group=FINE_TUNING)
    label_smoothing: float = option(0.0, "label-smoothing factor of the cross-entropy",
                                    group=FINE_TUNING)
    patience: int = option(3, "stop after this many epochs without a better dev score", group=FINE_TUNING)
    min_steps: int = option(300, "at least this many optimiser steps: a small training set gets more epochs than "
                                 "--epochs, and patience with them (from about 1,800 sentences on: --epochs as "
                                 "given)", group=FINE_TUNING)
    dev_fraction: float = option(0.1, "dev share split from --train when --dev is not given", group=FINE_TUNING)
    refit: bool = option(False, "after the dev set has picked the epoch, fine-tune once more from the pretrained "
                                "weights on --train and the dev sentences together, for that many epochs on the same "
                                "schedule (metrics.json keeps the first fit's dev scores). A frozen encoder refits "
                                "its head on both, as it always does with a dev share of --train",
                         group=FINE_TUNING)
    # off for this stage alone; `rasa-kd pipeline` and the component ask for auto (their default)
    entities: str = option("off", "auto: when the training data has entity annotations, also learn a token head "
                                  "that tags them (a joint teacher; not with --encoder frozen); off: intents only",
                           choices=ENTITY_MODES, group=FINE_TUNING)
    labelling: str = option(DEFAULT_LABELLING, "which pieces the tag head learns: all, or first (each word's "
                                               "first piece)", choices=LABELLINGS, group=FINE_TUNING)
    tag_weight: float = option(1.0, "weight of the tag loss beside the intent loss", group=FINE_TUNING)


# The settings are inherited so that their fields are flat: each is a flag of
# `rasa-kd teacher` under its old name (--lr, --batch-size) and a field a preset sets.
@dataclass
class TeacherOptions(TeacherSettings):
    """`rasa-kd teacher`'s options: the files, and the fine-tuning settings."""

    train: Path = option(help="Rasa NLU YAML training file")
    dev: Optional[Path] = option(None, "Rasa NLU YAML dev file for early stopping (default: a stratified "
                                       "--dev-fraction of --train, held out from training)")
    model: str = option(DEFAULT_TEACHER, "checkpoint: minilm (offline all-MiniLM-L6-v2, English), usem (offline "
                                         "Universal Sentence Encoder multilingual, 16 languages), mpnet "
                                         "(all-mpnet-base-v2, after `make mpnet`), a local folder or a hub id")
    out: Path = option(help="output teacher folder")
    threads: Optional[int] = option(None, "torch threads (default: all available cores)")
    force: bool = option(False, "replace an output folder that has content")
    quiet: bool = option(False, "no progress bars")
    allow_unknown_tokens: bool = option(False, f"fine-tune even when the teacher's tokenizer maps more than "
                                               f"{UNKNOWN_WORDS_LIMIT * 100:.0f} %% "
                                               "of the training words to its unknown token (by default that stops: "
                                               "the data's language is probably not the teacher's)")


# ---------------------------------------------------------------- the backbone


def load_pretrained(name: Optional[str], labels: Sequence[str], seed: int):
    """(tokenizer, sequence-classification model with a fresh head) from a shortcut, folder or hub id."""

    resolved = resolve_model(name)
    transformers.set_seed(seed)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        tokenizer = load_tokenizer(resolved)
        model = AutoModelForSequenceClassification.from_pretrained(
            resolved, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)
    except (OSError, ValueError, KeyError) as error:
        if Path(resolved).exists():
            message = " ".join(str(error).split())[:200]
            raise UserError(f"{resolved}: not a loadable sequence-classification model: {message}") from error
        raise hub_error(name, error) from error
    finally:
        transformers.logging.set_verbosity(verbosity)
    return tokenizer, model


# ---------------------------------------------------------------- data


def read_train_dev(train_path: Path, dev_path: Optional[Path], fraction: float, seed: int):
    """(train examples, dev examples, labels, dev source) with the bad-input checks."""
    train = read_examples(train_path)
    labels = sorted({e.intent for e in train})
    if len(labels) < 2:
        raise UserError(f"{train_path}: needs at least 2 intents to train a classifier, found {labels}")
    if dev_path is not None:
        dev = read_examples(dev_path)
        unknown = sorted({e.intent for e in dev} - set(labels))
        if unknown:
            raise UserError(f"{dev_path}: intents missing from the training file {train_path}: "
                            f"{', '.join(unknown[:10])}" + (" ..." if len(unknown) > 10 else ""))
        return train, dev, labels, str(dev_path)
    if not 0 < fraction < 1:
        raise UserError(f"--dev-fraction must be between 0 and 1, got {fraction}")
    train, dev = stratified_split(train, fraction, seed)
    if not dev:
        raise UserError(f"{train_path}: too few examples per intent to split off a dev set; give --dev")
    return train, dev, labels, f"stratified {fraction:g} of {train_path}"


def tokenized_dataset(tokenizer, examples, labels: Sequence[str], max_length: int,
                      tags: Optional[Sequence[str]] = None, labelling: str = "first"):
    """input_ids, attention_mask, label and, with `tags`, the BIO tag id of each piece."""
    index = {label: i for i, label in enumerate(labels)}
    data = datasets.Dataset.from_dict({"text": [e.text for e in examples],
                                       "label": [index[e.intent] for e in examples]})
    data = data.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
                    batched=True, remove_columns=["text"])
    if tags is None:
        return data
    return data.add_column("tags", gold_tags(tokenizer, examples, tags, labelling, max_length))


def gold_tags(tokenizer, examples, tags: Sequence[str], labelling: str, max_length: int) -> List[List[int]]:
    encoded = tokenizer([e.text for e in examples], truncation=True, max_length=max_length,
                        return_offsets_mapping=True)
    return [piece_tags(encoded["offset_mapping"][row], encoded.word_ids(row), example.entities, tags, labelling)
            for row, example in enumerate(examples)]


class TagCollator(DataCollatorWithPadding):
    """Pads the pieces as the tokenizer does, and `tags` to the same length with IGNORE."""

    def __call__(self, features):
        tags = [feature.pop("tags") for feature in features] if "tags" in features[0] else None
        batch = super().__call__(features)
        if tags is not None:
            length = batch["input_ids"].shape[1]
            batch["tags"] = torch.tensor([row + [IGNORE] * (length - len(row)) for row in tags], dtype=torch.long)
        return batch


# ---------------------------------------------------------------- training


def better_epoch(new: Tuple[float, float], best: Tuple[float, float], dev_size: int) -> bool:
    """Whether an epoch's (dev micro-F1, dev loss) beats the best so far. F1 decides unless
    the two are within one dev sentence of each other: on a small dev set (a 30-sentence
    dev of a small assistant) that is noise, and the lower dev loss decides instead."""
    one_sentence = 1.0 / dev_size + 1e-9
    if abs(new[0] - best[0]) > one_sentence:
        return new[0] > best[0]
    return new[1] < best[1]


class KeepBest(TrainerCallback):
    """Early stopping after `patience` epochs without a better dev score, keeping the best
    epoch's weights in memory (no checkpoints on disk)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_key, self.best_state, self.best_epoch, self.wait, self.collapsed = None, None, None, 0, 0
        self.history: List[Dict] = []

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        key = (metrics.get("eval_selection", metrics["eval_micro_f1"]), metrics["eval_loss"])
        self.history.append({"epoch": round(state.epoch or 0, 2), "dev_micro_f1": metrics["eval_micro_f1"],
                             "dev_loss": metrics["eval_loss"],
                             **({"dev_entity_f1": metrics["eval_entity_f1"]} if "eval_entity_f1" in metrics else {})})
        if self.best_key is None or better_epoch(key, self.best_key, metrics.get("eval_n") or 1):
            self.best_key, self.best_epoch, self.wait = key, state.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.wait += 1
        # two epochs in a row of one class for every dev sentence: diverged, not worth more epochs
        self.collapsed = self.collapsed + 1 if metrics.get("eval_collapsed") else 0
        if self.wait >= self.patience or self.collapsed >= 2:
            control.should_training_stop = True


def dev_scores(prediction, labels: Sequence[str], tags: Optional[Sequence[str]]) -> Dict[str, float]:
    """The Trainer's dev metrics; with tags also entity F1 per tagged piece and `selection`, the
    mean of intent micro-F1 and entity F1 that picks the epoch."""
    joint = isinstance(prediction.predictions, tuple)
    logits, gold = (prediction.predictions[0], prediction.label_ids[0]) if joint else \
        (prediction.predictions, prediction.label_ids)
    predicted = np.argmax(logits, axis=-1)
    scores = classification_scores([labels[i] for i in gold], [labels[i] for i in predicted])
    collapsed = collapsed_class(list(gold), list(predicted)) is not None
    scores["collapsed"] = float(collapsed)
    if joint and tags is not None:
        scores.update(piece_tag_scores(prediction.label_ids[1], np.argmax(prediction.predictions[1], axis=-1), tags))
        scores["selection"] = joint_selection(scores)
    return scores


class StopAfter(TrainerCallback):
    """Ends training after `epochs` epochs of a longer schedule (a refit stops where the first fit's
    dev set picked its epoch, on the same learning-rate schedule)."""

    def __init__(self, epochs: float):
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kwargs):
        if (state.epoch or 0) >= self.epochs - 1e-6:
            control.should_training_stop = True


def fine_tune(model, tokenizer, train_set, dev_set, labels: Sequence[str], settings: TeacherSettings,
              work: Path, progress: bool, stop_after: Optional[float] = None):
    """Train with the Trainer; returns the KeepBest callback (best weights already loaded). Without
    a `dev_set` (a refit) it trains `stop_after` epochs and returns None."""
    tags = model.tags if isinstance(model, JointTeacher) else None

    args = TrainingArguments(
        output_dir=str(work), num_train_epochs=settings.epochs, learning_rate=settings.lr,
        per_device_train_batch_size=settings.batch_size, per_device_eval_batch_size=64,
        warmup_ratio=settings.warmup, weight_decay=settings.weight_decay, seed=settings.seed,
        data_seed=settings.seed, label_smoothing_factor=0.0 if tags else settings.label_smoothing,
        eval_strategy="epoch" if dev_set is not None else "no", save_strategy="no", logging_strategy="epoch",
        report_to=[], disable_tqdm=not progress, group_by_length=True, dataloader_pin_memory=False,
        use_cpu=not _cuda_available(), label_names=["labels", "tags"] if tags else None)
    keep_best = KeepBest(settings.patience) if dev_set is not None else None
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
                      data_collator=TagCollator(tokenizer), compute_metrics=lambda p: dev_scores(p, labels, tags),
                      callbacks=[keep_best or StopAfter(stop_after)])
    if not progress:
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    if keep_best is not None:
        model.load_state_dict(keep_best.best_state)
    model.to("cpu")
    return keep_best


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def unknown_word_share(tokenizer, texts: Sequence[str], batch_size: int = 256) -> float:
    """Share of the words (as the tokenizer pre-splits them) that hold its unknown token;
    for a tokenizer without word ids (not a fast one), the share of unknown tokens."""
    unk = tokenizer.unk_token_id
    if unk is None or not texts:
        return 0.0
    words = unknown = 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), add_special_tokens=False, truncation=False)
        for row, ids in enumerate(batch["input_ids"]):
            word_ids = batch.word_ids(row) if tokenizer.is_fast else list(range(len(ids)))
            words += len({w for w in word_ids if w is not None})
            unknown += len({w for w, token in zip(word_ids, ids) if token == unk and w is not None})
    return unknown / words if words else 0.0


def check_language(tokenizer, examples, train_path: Path, model_name: Optional[str]) -> float:
    """Stop when the teacher's tokenizer cannot write too many of the training words."""
    share = unknown_word_share(tokenizer, [e.text for e in examples])
    if share > UNKNOWN_WORDS_LIMIT:
        raise UserError(f"{train_path}: the teacher's tokenizer ({model_name or DEFAULT_TEACHER}) maps {share:.0%} "
                        f"of the training words to its unknown token (limit {UNKNOWN_WORDS_LIMIT:.0%}); the data's "
                        f"language is probably not one it knows: use the offline multilingual teacher (--model usem: "
                        f"16 languages) or --allow-unknown-tokens to train anyway")
    return share


def collapsed_class(gold: Sequence[str], predicted: Sequence[str]) -> Optional[str]:
    """The one class a teacher predicts for every dev sentence when the dev set holds several, else None."""
    return predicted[0] if len(set(predicted)) == 1 and len(set(gold)) > 1 else None


def warn_if_collapsed(gold: Sequence[str], predicted: Sequence[str], lr: float) -> None:
    # A fine-tuning that diverged still writes a teacher; its labels would teach every student one class.
    label = collapsed_class(gold, predicted)
    if label is not None:
        logger.warning(f"warning: the teacher predicts {label!r} for every dev sentence: fine-tuning probably "
                       f"diverged at --lr {lr:g}; train it again with a lower --lr (a tenth of it, say)")


@dataclass
class Fit:
    """One fine-tuning of the backbone and its dev predictions."""

    hf_model: object  # the fine-tuned weights (the pooled classifier wraps them)
    keep_best: object
    predicted: List[str]
    train_seconds: float
    dev_seconds: float
    joint: Optional[JointTeacher] = None  # with entity tags: the model with its tag head
    refit_seconds: Optional[float] = None  # a refit on training and dev sentences took this long


def train_backbone(hf_model, model_name: Optional[str], tokenizer, labels: Sequence[str], examples, train_set,
                   dev_set, settings: TeacherSettings, progress: bool, tags: Optional[Sequence[str]] = None,
                   stop_after: Optional[float] = None):
    """(the classifier of the freshly loaded `hf_model` fine-tuned on `train_set`, the tokenized
    `examples`, in eval mode; fine_tune's KeepBest or None). A sentence encoder's head starts from
    logistic regression on its frozen vectors of `examples` (linear probing, then fine-tuning):
    its vectors have unit length, and a head from random initialisation takes most of the epochs
    to grow to the logits' scale."""
    model = with_pooling(hf_model, settings.pooling, str(model_name))
    if is_sentence_encoder(hf_model):
        set_linear_head(hf_model, model.eval(), tokenizer, labels, examples, settings.max_length)
    if tags:
        model = JointTeacher(hf_model, settings.pooling, tags, settings.tag_weight, settings.label_smoothing)
    with tempfile.TemporaryDirectory(prefix="rasa-kd-teacher-") as work:
        keep_best = fine_tune(model, tokenizer, train_set, dev_set, labels, settings, Path(work), progress,
                              stop_after=stop_after)
    return model.eval(), keep_best


def fit(hf_model, model_name: Optional[str], tokenizer, labels: Sequence[str], train, train_set, dev_set,
        dev_texts: Sequence[str], settings: TeacherSettings, progress: bool,
        tags: Optional[Sequence[str]] = None) -> Fit:
    """Fine-tune the freshly loaded backbone `hf_model` at settings.lr and predict the dev set."""
    started = time.time()
    model, keep_best = train_backbone(hf_model, model_name, tokenizer, labels, train, train_set, dev_set, settings,
                                      progress, tags)
    train_seconds = time.time() - started
    started = time.time()
    logits = predict_logits(model, tokenizer, dev_texts, settings.max_length)
    predicted = [labels[i] for i in logits.argmax(axis=1)]
    return Fit(hf_model, keep_best, predicted, train_seconds, time.time() - started,
               model if tags else None)


def refit_on_all(first: Fit, model_name: Optional[str], tokenizer, labels: Sequence[str], examples,
                 settings: TeacherSettings, progress: bool, tags: Optional[Sequence[str]] = None) -> Fit:
    """Fine-tune a freshly loaded backbone on `examples` (train and dev) for the epochs `first`'s
    dev set picked, on `first`'s schedule (settings as used); the dev predictions stay `first`'s."""
    _, hf_model = load_pretrained(model_name, labels, settings.seed)
    started = time.time()
    data = tokenized_dataset(tokenizer, examples, labels, settings.max_length, tags, settings.labelling)
    model, _ = train_backbone(hf_model, model_name, tokenizer, labels, examples, data, None, settings, progress, tags,
                              stop_after=first.keep_best.best_epoch)
    logger.info(f"teacher: refit on {len(examples):,} sentences (training and dev) for "
                f"{first.keep_best.best_epoch:g} epochs")
    return replace(first, hf_model=hf_model, joint=model if tags else None,
                   refit_seconds=time.time() - started)


def fit_frozen(hf_model, model_name: Optional[str], tokenizer, labels: Sequence[str], train, dev,
               settings: TeacherSettings, refit: bool) -> Fit:
    """Keep the backbone as it is and fit its linear classifier by logistic regression on its
    sentence vectors of the training sentences; predict the dev set. With `refit` (--refit, or a
    dev share of the training file) the dev set is only scored: the head is then fit again on
    train and dev (no epochs to stop early, and a few hundred sentences cannot spare a tenth)."""
    if not linear_head(hf_model):
        raise UserError(f"{model_name}: --encoder frozen needs a model whose head is one linear layer "
                        f"(BERT-style or usem); use --encoder fine-tune")
    model = with_pooling(hf_model, settings.pooling, str(model_name)).eval()
    started = time.time()
    set_linear_head(hf_model, model, tokenizer, labels, train, settings.max_length)
    train_seconds = time.time() - started
    started = time.time()
    logits = predict_logits(model, tokenizer, [e.text for e in dev], settings.max_length)
    dev_seconds = time.time() - started
    if refit:
        set_linear_head(hf_model, model, tokenizer, labels, [*train, *dev], settings.max_length)
    return Fit(hf_model, FrozenHead(), [labels[i] for i in logits.argmax(axis=1)], train_seconds, dev_seconds)


def set_linear_head(hf_model, model, tokenizer, labels: Sequence[str], examples, max_length: int) -> None:
    vectors = sentence_vectors(model, tokenizer, [e.text for e in examples], max_length)
    head = LogisticRegression(C=FROZEN_HEAD_C, max_iter=5000).fit(vectors, [labels.index(e.intent) for e in examples])
    weight, bias = head.coef_, head.intercept_
    if len(labels) == 2:  # scikit-learn keeps one row for two classes: the same softmax as +-half of it
        weight, bias = np.stack([-weight[0] / 2, weight[0] / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    with torch.no_grad():
        hf_model.classifier.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        hf_model.classifier.bias.copy_(torch.from_numpy(bias.astype(np.float32)))


class FrozenHead:
    """What metrics.json records of a fit without epochs."""

    best_epoch = None
    history: List[Dict] = []


def schedule(n_train: int, settings: TeacherSettings) -> Dict:
    """Epochs and patience for at least settings.min_steps steps (both scaled by the same factor:
    a few hundred sentences make a few steps per epoch, and MiniLM on 300 Sara sentences
    stays near 0.52 dev accuracy after the 54 steps of 6 epochs, 0.71 after 300)."""
    steps_per_epoch = math.ceil(n_train / settings.batch_size)
    scale = settings.min_steps / max(steps_per_epoch * settings.epochs, 1)
    if scale <= 1:
        return {}
    return {"epochs": math.ceil(settings.epochs * scale), "patience": math.ceil(settings.patience * scale)}


def fit_with_retry(hf_model, model_name: Optional[str], tokenizer, labels: Sequence[str], train, train_set, dev_set,
                   dev, settings: TeacherSettings, progress: bool,
                   tags: Optional[Sequence[str]] = None) -> Tuple[Fit, TeacherSettings, Optional[float]]:
    """Fine-tune the loaded backbone at --lr, or at the default and, when the teacher collapsed to
    one class, a reloaded one at a tenth of it; (the fit kept, its settings, the rate retried from or None)."""
    gold, texts = [e.intent for e in dev], [e.text for e in dev]
    used = replace(settings, lr=settings.lr or DEFAULT_LR, **schedule(len(train_set), settings))
    result = fit(hf_model, model_name, tokenizer, labels, train, train_set, dev_set, texts, used, progress, tags)
    label = collapsed_class(gold, result.predicted)
    if label is None or settings.lr is not None:
        warn_if_collapsed(gold, result.predicted, used.lr)
        return result, used, None
    retry = replace(used, lr=used.lr * RETRY_LR_FACTOR)
    logger.warning(f"teacher: predicts {label!r} for every dev sentence at lr {used.lr:g} (fine-tuning diverged); "
                   f"training again at {retry.lr:g}")
    _, fresh_model = load_pretrained(model_name, labels, settings.seed)
    second = fit(fresh_model, model_name, tokenizer, labels, train, train_set, dev_set, texts, retry, progress, tags)
    second.train_seconds += result.train_seconds
    warn_if_collapsed(gold, second.predicted, retry.lr)
    return second, retry, used.lr


def teacher_tags(train, settings: TeacherSettings, hf_model, tokenizer,
                 model_name: Optional[str]) -> Optional[List[str]]:
    """The BIO tags a joint teacher learns, or None: intents only."""
    types = entity_types(train)
    if settings.entities == "off" or not types:
        return None
    if settings.encoder == "frozen" or not can_tag(hf_model) or not getattr(tokenizer, "is_fast", False):
        logger.info(f"teacher: {model_name or DEFAULT_TEACHER} learns no entity tags (--encoder {settings.encoder}, "
                    f"or no per-piece states or fast tokenizer): intents only")
        return None
    return tag_names(types)


def dev_entity_scores(joint: JointTeacher, tokenizer, dev, settings: TeacherSettings) -> Dict[str, float]:
    """Entity precision, recall and F1 per tagged piece of the dev set (see dev_scores)."""
    gold = gold_tags(tokenizer, dev, joint.tags, settings.labelling, settings.max_length)
    predicted = predict_tag_logits(joint, tokenizer, [e.text for e in dev], settings.max_length)
    return piece_tag_scores(np.concatenate([np.asarray(row, dtype=np.int64) for row in gold]),
                            np.concatenate([logits.argmax(axis=-1) for logits in predicted]), joint.tags)


def train_teacher(train_path: Path, dev_path: Optional[Path], model_name: Optional[str], out: Path,
                  settings: TeacherSettings, force: bool = False, progress: bool = True,
                  threads: Optional[int] = None, allow_unknown_tokens: bool = False) -> Dict:
    """Fine-tune, evaluate on dev and write the teacher folder; returns metrics.json's content."""

    if settings.pooling not in POOLINGS:
        raise UserError(f"--pooling must be cls or mean, got {settings.pooling!r}")
    if settings.encoder not in ENCODER_MODES:
        raise UserError(f"--encoder must be fine-tune or frozen, got {settings.encoder!r}")
    if settings.entities not in ENTITY_MODES or settings.labelling not in LABELLINGS:
        raise UserError(f"--entities must be auto or off and --labelling first or all, got "
                        f"{settings.entities!r} and {settings.labelling!r}")
    train, dev, labels, dev_source = read_train_dev(train_path, dev_path, settings.dev_fraction, settings.seed)
    check_output_dir(Path(out), force)
    torch.set_num_threads(threads or distributed.threads_per_process())
    tokenizer, hf_model = load_pretrained(model_name, labels, settings.seed)
    if is_sentence_encoder(hf_model):
        settings = replace(settings, pooling="cls")  # its own head reads its own sentence vector
    unknown_share = (unknown_word_share(tokenizer, [e.text for e in train]) if allow_unknown_tokens
                     else check_language(tokenizer, train, train_path, model_name))
    tags = teacher_tags(train, settings, hf_model, tokenizer, model_name)
    train_set = tokenized_dataset(tokenizer, train, labels, settings.max_length, tags, settings.labelling)
    dev_set = tokenized_dataset(tokenizer, dev, labels, settings.max_length, tags, settings.labelling)
    refit_head = settings.encoder == "frozen" and (settings.refit or dev_path is None)
    if settings.encoder == "frozen":
        kept, used, retried_from = fit_frozen(hf_model, model_name, tokenizer, labels, train, dev, settings,
                                              refit=refit_head), settings, None
    else:
        kept, used, retried_from = fit_with_retry(hf_model, model_name, tokenizer, labels, train, train_set, dev_set,
                                                  dev, settings, progress, tags)
        if settings.refit:
            kept = refit_on_all(kept, model_name, tokenizer, labels, [*train, *dev], used, progress, tags)
    metrics = {
        "model": model_name or DEFAULT_TEACHER,
        "labels": len(labels),
        "train_examples": len(train),
        "unknown_word_share": round(unknown_share, 4),
        "dev_examples": len(dev),
        "dev_source": dev_source,
        "head_refit_with_dev": refit_head,
        "refit": ({"examples": len(train) + len(dev), "epochs": kept.keep_best.best_epoch,
                   "seconds": round(kept.refit_seconds, 1)} if kept.refit_seconds is not None else None),
        "dev": {**classification_scores([e.intent for e in dev], kept.predicted),
                **(dev_entity_scores(kept.joint, tokenizer, dev, used) if kept.joint else {})},
        **({"tags": tags} if tags else {}),
        "best_epoch": kept.keep_best.best_epoch,
        "history": kept.keep_best.history,
        "lr_retried_from": retried_from,
        "train_seconds": round(kept.train_seconds, 1),
        "dev_sentences_per_s": round(len(dev) / max(kept.dev_seconds, 1e-9), 1),
        "parameters": sum(p.numel() for p in kept.hf_model.parameters()),
        "threads": torch.get_num_threads(),
        "settings": asdict(used),
    }
    if not distributed.is_main():  # trained data-parallel; the main process writes the folder
        return metrics
    with atomic_output_dir(out, force) as tmp:
        kept.hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_teacher_files(tmp, labels, used.pooling, used.max_length, used.labelling if tags else None)
        if kept.joint:
            kept.joint.save_head(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ---------------------------------------------------------------- CLI


def settings_of(options: TeacherOptions) -> TeacherSettings:
    """The fine-tuning settings alone (what metrics.json records)."""
    return TeacherSettings(**{f.name: getattr(options, f.name) for f in fields(TeacherSettings)})


def train_from_options(options: TeacherOptions) -> Dict:
    """Train the teacher into options.out and print a summary; returns metrics.json's content."""
    metrics = train_teacher(options.train, options.dev, options.model, options.out, settings_of(options),
                            force=options.force, progress=not options.quiet, threads=options.threads,
                            allow_unknown_tokens=options.allow_unknown_tokens)
    dev = metrics["dev"]
    fitted = ("frozen encoder, logistic-regression head" if metrics["best_epoch"] is None
              else f"best epoch {metrics['best_epoch']:g}")
    logger.info(f"teacher -> {options.out}: dev accuracy {dev['accuracy']:.4f}, micro-F1 {dev['micro_f1']:.4f} "
                f"({fitted}), {metrics['train_seconds']:.0f} s training, "
                f"{metrics['dev_sentences_per_s']:.0f} sentences/s on dev")
    return metrics
