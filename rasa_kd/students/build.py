"""Building an untrained student (tokenizer + model) from the teacher and the transfer set.

* BiLSTM, `words`: vocabulary = `[PAD]`, `[UNK]`, the transfer set's words that have
  a pretrained vector or occur at least `min_count` times (random vectors), then the
  most frequent remaining pretrained words up to `vocab_size`.
* BiLSTM, `wordpieces`: the teacher's tokenizer and input embedding matrix.
* small BERT: the teacher's tokenizer; embeddings projected from the teacher's.

With `prune_vocab`, wordpiece students keep only the pieces that occur in the
transfer set (`prune_min_count` times) or are among the teacher vocabulary's
`prune_keep_common` most common pieces, and word students only the transfer set's
words (no filling up from the pretrained vectors). With `embedding_dim` D smaller
than the pretrained width, the (kept) embedding rows are projected on their top D
principal components (Sučík 2020), so the student stores V x D tables.
"""
import logging
from typing import Dict, List, Optional, Tuple

import numpy as np

from rasa_kd.errors import UserError
from rasa_kd.students.bilstm import BiLSTMStudent
from rasa_kd.students.config import BiLSTMConfig, SmallBertConfig
from rasa_kd.students.data import word_counts
from rasa_kd.students.distil_options import DistilOptions
from rasa_kd.students.small_bert import SmallBertStudent, pca_projection
from rasa_kd.students.tokenizers import (PAD, UNK, WordpieceTokenizer, WordTokenizer, is_prunable, piece_counts,
                                         prune_wordpieces)
from rasa_kd.teachers.folder import TeacherFolder
from rasa_kd.teachers.resources import load_word_vectors

logger = logging.getLogger(__name__)


def word_vocabulary(counts, vectors: Tuple[List[str], np.ndarray], vocab_size: int, min_count: int,
                    seed: int = 0, fill: bool = True) -> Tuple[List[str], np.ndarray]:
    """(words starting with [PAD], [UNK]; their initial vectors) as described in the module docstring."""
    names, matrix = vectors
    index: Dict[str, int] = {}
    for i, word in enumerate(names):
        index.setdefault(word, i)
    rng = np.random.default_rng(seed)
    scale = float(matrix.std()) if matrix.size else 0.1
    words, rows = [PAD, UNK], [np.zeros(matrix.shape[1], np.float32), rng.normal(0, scale, matrix.shape[1])]
    chosen = set(words)
    for word, count in counts.most_common():
        if word in chosen or (word not in index and count < min_count):
            continue
        chosen.add(word)
        words.append(word)
        rows.append(matrix[index[word]] if word in index else rng.normal(0, scale, matrix.shape[1]))
    for word in names if fill else ():
        if len(words) >= vocab_size:
            break
        if word not in chosen:
            chosen.add(word)
            words.append(word)
            rows.append(matrix[index[word]])
    return words, np.stack(rows).astype(np.float32)


def reduce_dimension(vectors: np.ndarray, dim: Optional[int], also: Optional[np.ndarray] = None):
    """`vectors` projected on their top `dim` principal components (unchanged when dim is
    None or not smaller than their width); with `also`, (that, `also` projected the same way)."""
    if not dim or dim >= vectors.shape[1]:
        return vectors if also is None else (vectors, also)

    mean, components = pca_projection(vectors, dim)
    reduced = ((vectors - mean) @ components).astype(np.float32)
    if also is None:
        return reduced
    return reduced, ((also - also.mean(axis=0)) @ components).astype(np.float32)


def wordpiece_vocabulary(options: DistilOptions, teacher: TeacherFolder, transfer, special_tokens: bool) -> Tuple:
    """(tokenizer, the teacher's embedding rows of its pieces, hf_tokenizer or None): the
    teacher's tokenizer, pruned to the transfer set's pieces with `prune_vocab` (a pruned
    package carries only its own tokenizer.json, so no HF tokenizer files)."""
    from tqdm.auto import tqdm

    tokenizer = WordpieceTokenizer.from_pretrained(teacher.tokenizer, options.max_length, special_tokens=special_tokens)
    table = teacher.word_embeddings()
    if not options.prune_vocab:
        return tokenizer, table, teacher.tokenizer
    if not is_prunable(tokenizer):
        logger.info(f"vocabulary not pruned: the teacher's tokenizer is neither WordPiece nor Unigram ({teacher.path})")
        return tokenizer, table, teacher.tokenizer
    texts = tqdm(transfer.texts(), total=len(transfer.dataset), desc="counting wordpieces", unit=" sentences")
    pruned, kept = prune_wordpieces(tokenizer, piece_counts(tokenizer.backend, texts, special_tokens),
                                    options.prune_min_count, options.prune_keep_characters, options.prune_keep_common)
    pruned.teacher_ids = kept
    logger.info(f"vocabulary pruned to the transfer set and the {options.prune_keep_common:,} most common pieces: "
                f"{len(kept):,} of {len(tokenizer):,} wordpieces")
    return pruned, table[kept], None


def build_bilstm(options: DistilOptions, n_labels: int, teacher: Optional[TeacherFolder], transfer) -> Tuple:
    """(tokenizer, model, hf_tokenizer or None) for a BiLSTM student."""
    if options.vocab == "words":
        from tqdm.auto import tqdm

        counts = word_counts(tqdm(transfer.texts(), total=len(transfer.dataset), desc="counting words", unit=" sentences"))
        pretrained = load_word_vectors(options.vectors, limit=options.vectors_limit)
        words, vectors = word_vocabulary(counts, pretrained, options.vocab_size, options.min_count, options.seed,
                                         fill=not options.prune_vocab)
        tokenizer, hf_tokenizer, unk_id = WordTokenizer(words, options.max_length), None, 1
    else:
        tokenizer, vectors, hf_tokenizer = wordpiece_vocabulary(options, teacher, transfer, special_tokens=False)
        unk_id = None
    vectors = reduce_dimension(vectors, options.embedding_dim)
    config = BiLSTMConfig(vocab_size=int(vectors.shape[0]), embedding_dim=int(vectors.shape[1]), n_labels=n_labels,
                          mode=options.embedding_mode, hidden_size=options.hidden_size or BiLSTMConfig.hidden_size,
                          pooling=options.pooling, fc_size=options.fc_size, dropout=options.dropout, unk_id=unk_id,
                          n_tags=len(transfer.tags or []))
    return tokenizer, BiLSTMStudent(config, vectors=vectors), hf_tokenizer


def build_small_bert(options: DistilOptions, n_labels: int, teacher: TeacherFolder, transfer) -> Tuple:
    """(tokenizer, model, hf_tokenizer or None) for a small-BERT student."""
    teacher_config = teacher.base_model.config
    tokenizer, word, hf_tokenizer = wordpiece_vocabulary(options, teacher, transfer, special_tokens=True)
    max_positions = getattr(teacher_config, "max_position_embeddings", 512)
    if options.max_length > max_positions:
        raise UserError(f"--max-length {options.max_length} exceeds the teacher's {max_positions} positions")
    hidden = options.hidden_size or SmallBertConfig.hidden_size
    if hidden % options.heads:
        raise UserError(f"--hidden-size {hidden} is not a multiple of --heads {options.heads}")
    positions = teacher.position_embeddings()
    reduced, positions = reduce_dimension(word, options.embedding_dim, positions) if positions is not None else (
        reduce_dimension(word, options.embedding_dim), None)
    config = SmallBertConfig(vocab_size=int(word.shape[0]), teacher_embedding_dim=int(reduced.shape[1]),
                             n_labels=n_labels, max_position_embeddings=int(max_positions), hidden_size=hidden,
                             num_hidden_layers=options.layers, num_attention_heads=options.heads,
                             intermediate_size=options.intermediate, dropout=options.dropout,
                             type_vocab_size=int(getattr(teacher_config, "type_vocab_size", 0) or
                                                 SmallBertConfig.type_vocab_size),
                             projection=options.projection, n_tags=len(transfer.tags or []))
    model = SmallBertStudent(config)
    if options.init_from_teacher:
        if not model.widths_match(teacher_config) or teacher_config.model_type != "bert":
            raise UserError("--init-from-teacher needs a BERT teacher with the student's hidden size, heads and "
                            f"intermediate size ({teacher_config.hidden_size}, {teacher_config.num_attention_heads}, "
                            f"{teacher_config.intermediate_size})")
        model.init_from_teacher(teacher.base_model, word, reduced)
    else:
        model.init_embeddings(reduced, positions)
    return tokenizer, model, hf_tokenizer
