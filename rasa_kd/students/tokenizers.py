"""The students' two tokenizers, both returning padded id batches and character offsets.

* `WordTokenizer` ("words"): a lowercase regex split (`\\w+` runs and single
  punctuation characters); the vocabulary is `vocab.txt`, one word per line, the
  line number being the id. Lines 0 and 1 are always `[PAD]` and `[UNK]`.
* `WordpieceTokenizer` ("wordpieces"): the teacher's fast tokenizer, saved as the
  Hugging Face tokenizer files (`tokenizer.json` ...) and read back with the
  `tokenizers` library alone (no transformers or torch at inference time).
  `prune_wordpieces` keeps only the pieces seen in the transfer set (plus, by default,
  the teacher vocabulary's most common pieces): the pruned
  tokenizer is the same WordPiece tokenizer over the kept pieces (ids renumbered in
  the teacher's order), so a word spelt with kept pieces is split as before, one that
  needs a dropped piece is re-split with kept ones, and one that cannot be written
  with them becomes `[UNK]` (the one-character pieces of the scripts the transfer set
  uses are kept by default, so that happens only to characters the teacher does not
  know or of a script the training data never used). Training and inference both use the pruned
  `tokenizer.json`, so they see identical ids; the kept pieces' teacher ids are
  recorded in student.json (`tokenizer.teacher_ids`) for losses that run the teacher.

Both produce `input_ids` and `attention_mask` (int64 numpy arrays, padded to the
longest text in the batch, truncated to `max_length`) and, per text, the
`(start, end)` character span of every position (`(0, 0)` for special tokens and
padding). Every text gets at least one position, so empty texts work.
"""
import copy
import json
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from rasa_kd.errors import UserError
from rasa_kd.nlu_data.scripts import letter_script, main_scripts, scripts_of

PAD, UNK = "[PAD]", "[UNK]"
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")
VOCAB_FILE = "vocab.txt"
Offsets = List[Tuple[int, int]]


class Batch(dict):
    """`input_ids`, `attention_mask` (numpy int64 [n, length]) and `offsets` (list per text)."""


def _pad(rows: Sequence[List[int]], offsets: Sequence[Offsets], pad_id: int) -> Batch:
    length = max(1, max(len(row) for row in rows))
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return Batch(input_ids=ids, attention_mask=mask, offsets=list(offsets))


def split_words(text: str) -> Tuple[List[str], Offsets]:
    """Lowercased words and punctuation of `text` with their character spans."""
    matches = list(WORD_PATTERN.finditer(text))
    return [m.group().lower() for m in matches], [m.span() for m in matches]


class WordTokenizer:
    """Regex words looked up in a fixed vocabulary; unknown words map to `[UNK]` (id 1)."""

    kind = "words"

    def __init__(self, words: Sequence[str], max_length: int = 64):
        if list(words[:2]) != [PAD, UNK]:
            raise ValueError(f"a word vocabulary starts with {PAD} and {UNK}")
        self.words = list(words)
        self.index: Dict[str, int] = {w: i for i, w in enumerate(self.words)}
        self.max_length = max_length
        self.pad_id, self.unk_id = 0, 1

    def __len__(self) -> int:
        return len(self.words)

    def ids_and_offsets(self, text: str) -> Tuple[List[int], Offsets]:
        words, offsets = split_words(text)
        words, offsets = words[:self.max_length], offsets[:self.max_length]
        if not words:
            return [self.unk_id], [(0, 0)]
        return [self.index.get(w, self.unk_id) for w in words], offsets

    def __call__(self, texts: Iterable[str]) -> Batch:
        pairs = [self.ids_and_offsets(t) for t in texts]
        return _pad([p[0] for p in pairs], [p[1] for p in pairs], self.pad_id)

    def save(self, folder: Path) -> List[str]:
        with open(Path(folder) / VOCAB_FILE, "w", encoding="utf-8") as f:
            f.writelines(f"{w}\n" for w in self.words)
        return [VOCAB_FILE]

    @classmethod
    def load(cls, folder: Path, max_length: int) -> "WordTokenizer":
        path = Path(folder) / VOCAB_FILE
        try:
            words = path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: cannot read the vocabulary ({type(error).__name__})") from error
        if words and words[-1] == "":
            words.pop()
        if words[:2] != [PAD, UNK]:
            raise UserError(f"{path}: not a rasa-kd word vocabulary (first lines must be {PAD} and {UNK})")
        return cls(words, max_length)


class WordpieceTokenizer:
    """The teacher's fast (Rust) tokenizer from `tokenizer.json`, with `[CLS]`/`[SEP]` when `special_tokens`."""

    kind = "wordpieces"
    FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

    def __init__(self, backend, max_length: int = 64, special_tokens: bool = True):
        self.backend = backend
        self.max_length = max_length
        self.special_tokens = special_tokens
        self.backend.no_padding()
        self.backend.enable_truncation(max_length)
        self.pad_id = self._pad_id()
        self.teacher_ids = None  # pruned: the teacher's id of each of this vocabulary's pieces

    def _pad_id(self) -> int:
        for token in ("[PAD]", "<pad>", "<PAD>"):
            found = self.backend.token_to_id(token)
            if found is not None:
                return found
        return 0

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: Iterable[str]) -> Batch:
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=self.special_tokens)
        rows, offsets = [], []
        for encoding in encodings:
            ids, spans = list(encoding.ids), [tuple(o) for o in encoding.offsets]
            if not ids:
                ids, spans = [self.backend.token_to_id(UNK) or 0], [(0, 0)]
            rows.append(ids)
            offsets.append(spans)
        return _pad(rows, offsets, self.pad_id)

    @classmethod
    def from_pretrained(cls, hf_tokenizer, max_length: int, special_tokens: bool) -> "WordpieceTokenizer":
        """From a transformers fast tokenizer (e.g. the teacher's AutoTokenizer)."""
        if not getattr(hf_tokenizer, "is_fast", False):
            raise UserError("the teacher's tokenizer has no fast (Rust) version; wordpiece students need one")
        return cls(copy.deepcopy(hf_tokenizer.backend_tokenizer), max_length, special_tokens)

    def save(self, folder: Path) -> List[str]:
        self.backend.save(str(Path(folder) / "tokenizer.json"))
        return ["tokenizer.json"]

    @classmethod
    def load(cls, folder: Path, max_length: int, special_tokens: bool) -> "WordpieceTokenizer":
        from tokenizers import Tokenizer

        path = Path(folder) / "tokenizer.json"
        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as error:  # the Rust library raises plain Exceptions
            raise UserError(f"{path}: cannot read the tokenizer ({str(error).splitlines()[0][:120]})") from error
        return cls(backend, max_length, special_tokens)


def piece_counts(backend, texts: Iterable[str], special_tokens: bool, batch_size: int = 4096) -> Counter:
    """How often each token id of `backend` occurs in `texts` (untruncated)."""
    backend = copy.deepcopy(backend)
    backend.no_padding()
    backend.no_truncation()
    counts: Counter = Counter()
    batch: List[str] = []
    for text in list(texts) + [None]:
        if text is not None:
            batch.append(text)
        if batch and (text is None or len(batch) == batch_size):
            for encoding in backend.encode_batch(batch, add_special_tokens=special_tokens):
                counts.update(encoding.ids)
            batch = []
    return counts


def _remap_special_ids(node, new_id: Dict[int, int]):
    """Post-processor JSON with every special-token id renumbered (Template or Bert processing)."""
    if isinstance(node, dict):
        return {key: (_remap_special_ids(value, new_id) if key not in ("ids", "cls", "sep") else
                      [new_id.get(v, v) if isinstance(v, int) else v for v in value])
                for key, value in node.items()}
    if isinstance(node, list):
        return [_remap_special_ids(item, new_id) for item in node]
    return node


def is_character_piece(token: str) -> bool:
    """A one-character piece (`a`, `##a`): with all of them kept, every word the teacher could
    spell can still be spelt, letter by letter, instead of becoming [UNK]."""
    return len(token) == 1 or (token.startswith("##") and len(token) == 3)


PRUNABLE = ("WordPiece", "Unigram")
# a script with this share of the transfer set's letters is one of its main scripts (MTOD-th: Thai
# 99 %, Latin 1 %), whose common pieces pruning keeps
MAIN_SCRIPT_SHARE = 0.1


def is_prunable(tokenizer: "WordpieceTokenizer") -> bool:
    """Whether `prune_wordpieces` can prune the tokenizer's vocabulary (WordPiece or Unigram)."""
    return json.loads(tokenizer.backend.to_str()).get("model", {}).get("type") in PRUNABLE


def common_pieces(vocab: Dict[str, int], special: set, n: int, scripts: Optional[Set[str]] = None) -> set:
    """The ids of the vocabulary's `n` most common pieces of two or more characters (with
    `scripts`, among those whose letters are all of these scripts). WordPiece vocabularies
    (BERT's, and those the `tokenizers` trainers write) list them from the most frequent on,
    after the special, `[unusedN]` and one-character tokens, so the lowest ids are the most
    common; Unigram vocabularies list them by score, the most likely first."""
    ordinary = sorted(i for token, i in vocab.items() if i not in special and not is_character_piece(token)
                      and not (token.startswith("[") and token.endswith("]"))
                      and (scripts is None or scripts_of(token) <= scripts))
    return set(ordinary[:n])


def seen_letters(vocab: Dict[str, int], counts: Counter) -> Counter:
    """Letters per script in the counted text (script -> letters), from the pieces seen."""
    letters: Counter = Counter()
    for token, i in vocab.items():
        for script in (letter_script(char) for char in token) if counts.get(i) else ():
            if script:
                letters[script] += counts[i]
    return letters


def prune_wordpieces(tokenizer: "WordpieceTokenizer", counts: Counter, min_count: int = 1,
                     keep_characters: bool = True, keep_common: int = 0) -> Tuple["WordpieceTokenizer", List[int]]:
    """(the pruned tokenizer, the kept pieces' ids in the original vocabulary, in new-id order).

    Kept: special/added tokens, every piece with `counts[id] >= min_count`, with
    `keep_characters` every one-character piece of the scripts the counted text uses (and
    those that are no letter), and the `keep_common` most common pieces of the teacher's
    vocabulary written in the text's main scripts (MAIN_SCRIPT_SHARE of its letters or more),
    so frequent words the transfer set lacks keep their own teacher embedding instead of
    being spelt in pieces, and a multilingual vocabulary keeps no Chinese for a Thai
    assistant. WordPiece (BERT) and Unigram (SentencePiece: USE-multilingual) vocabularies
    list their most common pieces first."""

    from tokenizers import Tokenizer

    data = json.loads(tokenizer.backend.to_str())
    model = data.get("model", {})
    if model.get("type") == "WordPiece":
        vocab: Dict[str, int] = model["vocab"]
        unk = vocab[model["unk_token"]]
    elif model.get("type") == "Unigram":
        vocab = {piece: i for i, (piece, _) in enumerate(model["vocab"])}
        unk = model["unk_id"]
    else:
        raise UserError(f"vocabulary pruning needs a WordPiece or Unigram tokenizer, the teacher's is "
                        f"{model.get('type')!r}; use --no-prune-vocab")
    special = {entry["id"] for entry in data.get("added_tokens", [])} | {unk}
    letters = seen_letters(vocab, counts)
    always = set(special) | common_pieces(vocab, special, keep_common, main_scripts(letters, MAIN_SCRIPT_SHARE))
    if keep_characters:
        always |= {i for token, i in vocab.items() if is_character_piece(token) and scripts_of(token) <= set(letters)}
    kept = sorted(i for i in vocab.values() if i in always or counts.get(i, 0) >= min_count)
    # added tokens outside the model's vocabulary (USE-multilingual's [MASK]) come after it, as before
    kept += sorted(special - set(vocab.values()))
    new_id = {old: new for new, old in enumerate(kept)}
    if model["type"] == "WordPiece":
        model["vocab"] = {token: new_id[i] for token, i in vocab.items() if i in new_id}
    else:
        model["vocab"], model["unk_id"] = [model["vocab"][i] for i in kept if i < len(vocab)], new_id[unk]
    for entry in data.get("added_tokens", []):
        entry["id"] = new_id[entry["id"]]
    data["post_processor"] = _remap_special_ids(data.get("post_processor"), new_id)
    data["padding"] = data["truncation"] = None
    backend = Tokenizer.from_str(json.dumps(data))
    return WordpieceTokenizer(backend, tokenizer.max_length, tokenizer.special_tokens), kept


def save_hf_tokenizer_files(hf_tokenizer, folder: Path) -> List[str]:
    """The teacher tokenizer's HF files (loadable with AutoTokenizer too); returns their names."""
    hf_tokenizer.save_pretrained(str(folder))
    return sorted(p.name for p in Path(folder).iterdir() if p.name in WordpieceTokenizer.FILES)


def load_tokenizer(folder: Path, spec: Dict) -> "WordTokenizer | WordpieceTokenizer":
    """The tokenizer a package's `student.json` `tokenizer` entry describes."""
    if spec.get("kind") == "words":
        return WordTokenizer.load(folder, spec["max_length"])
    if spec.get("kind") == "wordpieces":
        tokenizer = WordpieceTokenizer.load(folder, spec["max_length"], spec.get("special_tokens", True))
        tokenizer.teacher_ids = spec.get("teacher_ids")
        return tokenizer
    raise UserError(f"{folder}: unknown tokenizer kind {spec.get('kind')!r} in student.json")


def describe(tokenizer) -> Dict:
    """The `tokenizer` entry of student.json for `tokenizer`."""
    spec = {"kind": tokenizer.kind, "max_length": tokenizer.max_length, "vocab_size": len(tokenizer)}
    if tokenizer.kind == "words":
        spec.update(lowercase=True, pattern=WORD_PATTERN.pattern, pad=PAD, unk=UNK, file=VOCAB_FILE)
    else:
        spec.update(special_tokens=tokenizer.special_tokens, file="tokenizer.json")
        if getattr(tokenizer, "teacher_ids", None) is not None:
            spec.update(pruned=True, teacher_ids=list(map(int, tokenizer.teacher_ids)))
    return spec
