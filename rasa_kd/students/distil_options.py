"""`DistilOptions`: everything `rasa-kd distil` needs, in a module light enough for `presets`,
the pipeline and the Rasa components to import at the top.

Architecture defaults (sizes, dropout, learning rates) come from
`rasa_kd.students.config`; the field defaults here are the `balanced` preset (see
`rasa_kd.students.presets`), and the recipe recorded in student.json is these fields.
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rasa_kd.errors import UserError
from rasa_kd.options import option
from rasa_kd.students.config import (ARCHITECTURES, BILSTM_MODES, BILSTM_POOLINGS, DROPOUT, PROJECTIONS, BiLSTMConfig,
                                     SmallBertConfig, config_class)

DEFAULT_PRESET = "balanced"  # the names and their recipes: rasa_kd.students.presets
FILES, STUDENT, TRAINING = "files", "student", "training"
FILE_FIELDS = ("transfer", "dev", "test", "out", "work", "teacher", "force", "fresh")
SELECTIONS = ("auto", "dev", "teacher", "last")
# below this many dev sentences one flipped sentence moves dev accuracy by more than 0.3 points: too
# noisy to pick an epoch or stop on alone (a 300-example assistant's 10 % dev split is 30 sentences)
SMALL_DEV = 300
SMALL_DEV_SELECTION = "teacher"
HELD_OUT_SHARE, HELD_OUT_MAX = 0.1, 2_000  # teacher selection: transfer sentences held out of training


@dataclass
class DistilOptions:
    """Everything `rasa-kd distil` needs. The field defaults are the `balanced` preset
    (see `rasa_kd.students.presets`); the recipe recorded in student.json is these fields."""

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
    preset: str = option(DEFAULT_PRESET, "named recipe whose values the other options below start from: "
                                     "fast, balanced or accurate (docs/user-guide.md, Presets)", group=STUDENT)
    student: str = option("bilstm", "architecture", group=STUDENT, choices=ARCHITECTURES)
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
    embedding_mode: str = option(BiLSTMConfig.mode, "bilstm embeddings: frozen, trained, or both concatenated",
                                 group=STUDENT, choices=BILSTM_MODES)
    hidden_size: Optional[int] = option(None, f"bilstm units per direction; bert hidden size (when not given: "
                                              f"{BiLSTMConfig.hidden_size} bilstm, {SmallBertConfig.hidden_size} bert)",
                                        group=STUDENT)
    fc_size: int = option(BiLSTMConfig.fc_size, "bilstm fully-connected layer", group=STUDENT)
    pooling: str = option(BiLSTMConfig.pooling, "bilstm pooling over positions", group=STUDENT,
                          choices=BILSTM_POOLINGS)
    dropout: float = option(DROPOUT, "dropout", group=STUDENT)
    layers: int = option(SmallBertConfig.num_hidden_layers, "bert layers", group=STUDENT)
    heads: int = option(SmallBertConfig.num_attention_heads, "bert attention heads", group=STUDENT)
    intermediate: int = option(SmallBertConfig.intermediate_size, "bert feed-forward size", group=STUDENT)
    projection: str = option(SmallBertConfig.projection, "bert: teacher embeddings -> student width by a learned "
                                                         "linear layer (PCA-initialised) or PCA", group=STUDENT,
                             choices=PROJECTIONS)
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
    vector_weight: float = option(0.0, "weight of 1 - cosine between the student's sentence vector (through a "
                                       "learned projection) and the teacher's (a transfer set labelled with "
                                       "`rasa-kd label --vectors`)", group=TRAINING)
    tag_weight: float = option(1.0, "weight γ of the entity-tag loss (soft cross-entropy per piece against the "
                                    "teacher's tags) when the transfer set carries them", group=TRAINING)
    tag_hard_weight: float = option(0.0, "weight δ of cross-entropy on the gold tags of the original sentences "
                                         "within the tag loss: (1-δ)·soft + δ·hard (transfer sets of version 2 "
                                         "carry them)", group=TRAINING)
    epochs: float = option(8, "most epochs over the transfer set", group=TRAINING)
    patience: int = option(3, "stop after N epochs without dev improvement (0: never)", group=TRAINING)
    transfer_limit: Optional[int] = option(None, "train on the first N transfer sentences only: the originals, "
                                                 "then augmented ones in the order they were made (default: all)",
                                           group=TRAINING)
    originals_repeat: int = option(1, "times each original (training) sentence is in what the student trains on; "
                                      "0 leaves them out, 5 weighs them up in a large transfer set", group=TRAINING)
    batch_size: int = option(64, "training batch size", group=TRAINING)
    eval_batch_size: int = option(256, "dev batch size", group=TRAINING)
    learning_rate: Optional[float] = option(None, f"AdamW learning rate (when not given: "
                                                  f"{BiLSTMConfig.LEARNING_RATE:g} bilstm, "
                                                  f"{SmallBertConfig.LEARNING_RATE:g} bert)", group=TRAINING)
    weight_decay: float = option(0.0, "AdamW weight decay", group=TRAINING)
    warmup_ratio: float = option(0.0, "share of steps for linear warm-up", group=TRAINING)
    lr_scheduler: str = option("linear", "transformers scheduler name", group=TRAINING)
    best_metric: str = option("accuracy", "dev metric that picks the best epoch (a student that also learns "
                                          "entity tags: the mean of intent micro-F1 and entity F1)", group=TRAINING,
                              choices=("accuracy", "micro_f1", "macro_f1", "mcc"))
    selection: str = option("auto", "what picks the epoch and stops training: dev (the dev file's gold intents), "
                                    "teacher (the dev file plus agreement with the teacher on held-out transfer "
                                    "sentences), last (no early stopping: the last epoch), auto (dev with "
                                    f"{SMALL_DEV} or more dev sentences, else {SMALL_DEV_SELECTION})",
                            group=TRAINING, choices=SELECTIONS)
    seed: int = option(42, "random seed", group=TRAINING)


def check(options: DistilOptions) -> None:
    """One UserError line for a value out of range."""
    if not 0 <= options.hard_weight <= 1:
        raise UserError(f"--hard-weight must be between 0 and 1, got {options.hard_weight}")
    if not 0 <= options.tag_hard_weight <= 1:
        raise UserError(f"--tag-hard-weight must be between 0 and 1, got {options.tag_hard_weight}")
    if options.tag_weight < 0:
        raise UserError(f"--tag-weight must be at least 0, got {options.tag_weight}")
    if options.hidden_weight < 0 or (options.hidden_weight and options.student != "bert"):
        raise UserError(f"--hidden-weight must be at least 0 and needs --student bert, got {options.hidden_weight}")
    if options.vector_weight < 0 or (options.vector_weight and options.hidden_weight):
        raise UserError(f"--vector-weight must be at least 0 and cannot go with --hidden-weight, "
                        f"got {options.vector_weight}")
    if options.temperature <= 0:
        raise UserError(f"--temperature must be positive, got {options.temperature}")
    for name in ("epochs", "batch_size", "max_length", "vocab_size", "transfer_limit", "prune_min_count"):
        if getattr(options, name) is not None and getattr(options, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if options.originals_repeat < 0:
        raise UserError(f"--originals-repeat must be at least 0, got {options.originals_repeat}")
    if options.prune_keep_common < 0:
        raise UserError(f"--prune-keep-common must be at least 0, got {options.prune_keep_common}")
    if options.embedding_dim is not None and options.embedding_dim < 0:
        raise UserError(f"--embedding-dim must be at least 0, got {options.embedding_dim}")


def resolved(options: DistilOptions) -> DistilOptions:
    """The options with the architecture-dependent defaults filled in."""
    architecture = config_class(options.student)
    return dataclasses.replace(options, learning_rate=options.learning_rate or architecture.LEARNING_RATE,
                               hidden_size=options.hidden_size or architecture.hidden_size)


def selection_for(options: DistilOptions, dev_sentences: int) -> str:
    """The selection `options.selection` means for a dev file of `dev_sentences`."""
    if options.selection != "auto":
        return options.selection
    return "dev" if dev_sentences >= SMALL_DEV else SMALL_DEV_SELECTION
