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
import hashlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from rasa_kd.errors import UserError


class Teacher:
    """The parts of a teacher folder a student needs: tokenizer, base model, identity."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise UserError(f"{self.path}: teacher folder not found (no config.json); give it with --teacher")
        self._tokenizer = self._model = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), use_fast=True)
            except (OSError, ValueError) as error:
                raise UserError(f"{self.path}: cannot load the teacher's tokenizer ({type(error).__name__})") from error
        return self._tokenizer

    @property
    def model(self):
        """The teacher's base transformer (e.g. BertModel), without its classification head."""
        if self._model is None:
            from transformers import AutoModel

            try:
                self._model = AutoModel.from_pretrained(str(self.path)).eval()
            except (OSError, ValueError) as error:
                raise UserError(f"{self.path}: cannot load the teacher model ({type(error).__name__})") from error
        return self._model

    def word_embeddings(self) -> np.ndarray:
        return self.model.get_input_embeddings().weight.detach().float().numpy().copy()

    def position_embeddings(self) -> Optional[np.ndarray]:
        table = getattr(getattr(self.model, "embeddings", None), "position_embeddings", None)
        return None if table is None else table.weight.detach().float().numpy().copy()

    def labels(self) -> Optional[List[str]]:
        import json

        path = self.path / "labels.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def teacher_identity(path: Optional[str]) -> Dict:
    """student.json's `teacher` entry: path, name, model type and a fingerprint of config + labels."""
    if not path:
        return {}
    import json

    folder = Path(path)
    identity = {"path": str(folder.resolve()) if folder.exists() else str(path), "name": folder.name}
    digest = hashlib.sha256()
    for name in ("config.json", "labels.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    if (folder / "config.json").is_file():
        identity["model_type"] = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
        identity["fingerprint"] = digest.hexdigest()[:16]
    return identity


def word_vocabulary(counts, vectors: Tuple[List[str], np.ndarray], vocab_size: int, min_count: int,
                    seed: int = 0, fill: bool = True) -> Tuple[List[str], np.ndarray]:
    """(words starting with [PAD], [UNK]; their initial vectors) as described in the module docstring."""
    from rasa_kd.students.tokenizers import PAD, UNK

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
    from rasa_kd.students.small_bert import pca_projection

    mean, components = pca_projection(vectors, dim)
    reduced = ((vectors - mean) @ components).astype(np.float32)
    if also is None:
        return reduced
    return reduced, ((also - also.mean(axis=0)) @ components).astype(np.float32)


def wordpiece_vocabulary(args, teacher: Teacher, transfer, special_tokens: bool) -> Tuple:
    """(tokenizer, the teacher's embedding rows of its pieces, hf_tokenizer or None): the
    teacher's tokenizer, pruned to the transfer set's pieces with `prune_vocab` (a pruned
    package carries only its own tokenizer.json, so no HF tokenizer files)."""
    from tqdm.auto import tqdm

    from rasa_kd.students.tokenizers import WordpieceTokenizer, is_wordpiece, piece_counts, prune_wordpieces

    tokenizer = WordpieceTokenizer.from_pretrained(teacher.tokenizer, args.max_length, special_tokens=special_tokens)
    table = teacher.word_embeddings()
    if not args.prune_vocab:
        return tokenizer, table, teacher.tokenizer
    if not is_wordpiece(tokenizer):
        print(f"vocabulary not pruned: the teacher's tokenizer is not WordPiece ({teacher.path})", flush=True)
        return tokenizer, table, teacher.tokenizer
    texts = tqdm(transfer.texts(), total=len(transfer.dataset), desc="counting wordpieces", unit=" sentences")
    pruned, kept = prune_wordpieces(tokenizer, piece_counts(tokenizer.backend, texts, special_tokens),
                                    args.prune_min_count, args.prune_keep_characters, args.prune_keep_common)
    pruned.teacher_ids = kept
    print(f"vocabulary pruned to the transfer set and the {args.prune_keep_common:,} most common pieces: "
          f"{len(kept):,} of {len(tokenizer):,} wordpieces", flush=True)
    return pruned, table[kept], None


def build_bilstm(args, n_labels: int, teacher: Optional[Teacher], transfer) -> Tuple:
    """(tokenizer, model, hf_tokenizer or None) for a BiLSTM student."""
    from rasa_kd.students.bilstm import BiLSTMStudent
    from rasa_kd.students.tokenizers import WordTokenizer

    if args.vocab == "words":
        from rasa_kd.resources import load_word_vectors
        from rasa_kd.students.data import word_counts

        from tqdm.auto import tqdm

        counts = word_counts(tqdm(transfer.texts(), total=len(transfer.dataset), desc="counting words", unit=" sentences"))
        words, vectors = word_vocabulary(counts, load_word_vectors(args.vectors, limit=args.vectors_limit),
                                         args.vocab_size, args.min_count, args.seed, fill=not args.prune_vocab)
        tokenizer, hf_tokenizer, unk_id = WordTokenizer(words, args.max_length), None, 1
    else:
        tokenizer, vectors, hf_tokenizer = wordpiece_vocabulary(args, teacher, transfer, special_tokens=False)
        unk_id = None
    vectors = reduce_dimension(vectors, args.embedding_dim)
    config = {"vocab_size": int(vectors.shape[0]), "embedding_dim": int(vectors.shape[1]), "mode": args.embedding_mode,
              "hidden_size": args.hidden_size or 300, "pooling": args.pooling, "fc_size": args.fc_size,
              "dropout": args.dropout, "n_labels": n_labels, "unk_id": unk_id}
    return tokenizer, BiLSTMStudent(config, vectors=vectors), hf_tokenizer


def build_small_bert(args, n_labels: int, teacher: Teacher, transfer) -> Tuple:
    """(tokenizer, model, hf_tokenizer or None) for a small-BERT student."""
    from rasa_kd.students.small_bert import SmallBertStudent

    teacher_config = teacher.model.config
    tokenizer, word, hf_tokenizer = wordpiece_vocabulary(args, teacher, transfer, special_tokens=True)
    max_positions = getattr(teacher_config, "max_position_embeddings", 512)
    if args.max_length > max_positions:
        raise UserError(f"--max-length {args.max_length} exceeds the teacher's {max_positions} positions")
    hidden = args.hidden_size or 204
    if hidden % args.heads:
        raise UserError(f"--hidden-size {hidden} is not a multiple of --heads {args.heads}")
    positions = teacher.position_embeddings()
    reduced, positions = reduce_dimension(word, args.embedding_dim, positions) if positions is not None else (
        reduce_dimension(word, args.embedding_dim), None)
    config = {"vocab_size": int(word.shape[0]), "teacher_embedding_dim": int(reduced.shape[1]), "hidden_size": hidden,
              "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
              "intermediate_size": args.intermediate, "max_position_embeddings": int(max_positions),
              "type_vocab_size": int(getattr(teacher_config, "type_vocab_size", 2) or 2),
              "dropout": args.dropout, "projection": args.projection, "n_labels": n_labels}
    model = SmallBertStudent(config)
    if args.init_from_teacher:
        if not model.widths_match(teacher_config) or teacher_config.model_type != "bert":
            raise UserError("--init-from-teacher needs a BERT teacher with the student's hidden size, heads and "
                            f"intermediate size ({teacher_config.hidden_size}, {teacher_config.num_attention_heads}, "
                            f"{teacher_config.intermediate_size})")
        model.init_from_teacher(teacher.model, word, reduced)
    else:
        model.init_embeddings(reduced, positions)
    return tokenizer, model, hf_tokenizer
