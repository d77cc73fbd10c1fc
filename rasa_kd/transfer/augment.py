"""`rasa-kd augment`: training sentences -> a transfer set of unique new sentences.

Methods (a registry, `METHODS`; `--method a,b` shares `--size` between them):
  rules  Tang et al. (2019). For each training sentence, each word is, with
         probability --p-mask, replaced by [MASK]; else with probability --p-pos
         replaced by one of its --neighbours nearest words in the word vectors (the
         offline stand-in for "a word of the same part of speech"; candidates are the
         --vocab-limit most frequent alphabetic words). Then, with probability
         --p-ng, the sentence is cut to a random n-gram (n uniform in 1..--max-ngram).
         Passes over the shuffled training sentences repeat until --size sentences
         are made. Punctuation attached to a word is kept; case is kept (Title, UPPER).
         The word vectors are English: other data (see rasa_kd.teachers.choice) gets
         piece dropout instead of replacement. Text written without spaces (Thai,
         Chinese, Japanese, ...) is cut into the --segmenter teacher's pieces (else
         characters), and the rules work on those.
  lm     Tang & Lin (2019): fine-tune a causal LM (--lm, e.g. GPT-2) on the training
         sentences and sample from it (parent -1); see the lm options below.

Outlier exposure (--outliers, on top of --size): generic sentences from other domains (source
outlier, parent -1) that `rasa-kd label` turns into flat targets, so that the student learns to
be unsure off its domain (rasa_kd.transfer.outliers; `auto`: the packaged English corpus for
English data).

Every made sentence is new: not a training sentence, not in an --exclude file, not
made before (compared after whitespace and case normalisation). Seeded: the same
inputs and --seed give the same transfer set.

Output folder (written all-or-nothing; format in rasa_kd/formats/transfer_set.py):
  Arrow dataset   columns text, source (original|rules|lm|outlier), parent, intent
                  (training sentences first, source=original, parent=own index)
  transfer.json   format, version, size, counts by source, seed, method, params,
                  duplicates rejected, seconds, observed rule rates
"""
import json
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import datasets

import numpy as np

from tqdm import tqdm

from rasa_kd.errors import UserError
from rasa_kd.formats import transfer_set
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.outputs import atomic_output_dir, check_output_dir
from rasa_kd.formats.transfer_set import MASK
from rasa_kd.nlu_data.scripts import character_spans, needs_cutting
from rasa_kd.options import option
from rasa_kd.students.presets import Preset, transfer_size
from rasa_kd.teachers import choice
from rasa_kd.teachers.folder import load_tokenizer
from rasa_kd.teachers.resources import DEFAULT_VECTORS, load_word_vectors, resolve_model
from rasa_kd.transfer import outliers as exposure
from rasa_kd.transfer.lm_augment import LmParams, lm_method as sample_lm

logger = logging.getLogger(__name__)

# A token's word core: leading and trailing punctuation stay in place when the core is replaced.
TOKEN_PARTS = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
CANDIDATE_WORD = re.compile(r"^[a-z][a-z'-]*$")


RULES = "rules method (Tang et al. 2019)"


@dataclass
class RuleParams:
    """The rules method's settings (recorded in transfer.json as its params)."""

    p_mask: float = option(0.1, "per-word [MASK] probability", group=RULES)
    p_pos: float = option(0.1, "per-word nearest-neighbour replacement probability", group=RULES)
    p_ng: float = option(0.25, "per-sentence n-gram probability", group=RULES)
    max_ngram: int = option(5, "largest n of the n-gram", group=RULES)
    neighbours: int = option(10, "a replacement is drawn from this many nearest words", group=RULES)
    vectors: str = option(DEFAULT_VECTORS,
                          "word vectors: glove50 (offline GloVe 6B 50-d) or a word2vec/GloVe text file",
                          group=RULES)
    vocab_limit: int = option(50_000, "replacement candidates: the N most frequent words of the vectors",
                              group=RULES)
    language: Optional[str] = option(None, "the data's language (Rasa's `language:` key); replacement by word "
                                           "vectors is for English data, other data drops the word instead "
                                           "(default: read from the data)", group=RULES)
    segmenter: Optional[str] = option(None, "a teacher (usem, minilm, a folder) whose tokenizer cuts text written "
                                            "without spaces (Thai, Chinese, Japanese) into pieces for the rules "
                                            "(default: characters)", group=RULES)


# ---------------------------------------------------------------- nearest neighbours


def word_core(token: str) -> Tuple[str, str, str]:
    prefix, core, suffix = TOKEN_PARTS.match(token).groups()
    return prefix, core, suffix


def nearest_neighbours(vocabulary: Set[str], words: Sequence[str], matrix, limit: int, k: int,
                       chunk: int = 512) -> Dict[str, List[str]]:
    """word -> its k nearest candidate words by cosine, for the words of `vocabulary` that
    have a vector. Candidates: the first `limit` (most frequent) alphabetic words."""
    index = {w: i for i, w in enumerate(words)}
    candidates = [i for i, w in enumerate(words[:limit]) if CANDIDATE_WORD.match(w)]
    cand = matrix[candidates]
    cand = cand / np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-9)
    queries = sorted(w for w in vocabulary if w in index)
    result: Dict[str, List[str]] = {}
    for start in range(0, len(queries), chunk):
        names = queries[start:start + chunk]
        q = matrix[[index[w] for w in names]]
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-9)
        sims = q @ cand.T
        top = np.argpartition(-sims, min(k + 1, sims.shape[1] - 1), axis=1)[:, :k + 1]
        for row, word in enumerate(names):
            ranked = sorted(top[row], key=lambda j: (-sims[row, j], j))
            found = [words[candidates[j]] for j in ranked if words[candidates[j]] != word][:k]
            if found:
                result[word] = found
    return result


def match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


# ---------------------------------------------------------------- rules (Tang et al. 2019)


# ---------------------------------------------------------------- units: words, or pieces without spaces

Unit = Tuple[str, bool]  # (text, joined to the unit before it without a space)


class Segmenter:
    """A sentence's units for the rules: its whitespace-separated words, and inside a word
    with characters of a script written without spaces, the pieces the teacher's tokenizer
    cuts it into (else its characters, each with its combining marks)."""

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer

    def units(self, text: str) -> List[Unit]:
        units: List[Unit] = []
        for word in text.split():
            parts = self.pieces(word) if needs_cutting(word) else [word]
            units += [(part, i > 0) for i, part in enumerate(parts)]
        return units

    def pieces(self, word: str) -> List[str]:
        if self.tokenizer is None:
            return [word[start:end] for start, end in character_spans(word)]
        spans = self.tokenizer(word, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        starts = sorted({start for start, end in spans if end > start} | {0})
        return [word[a:b] for a, b in zip(starts, starts[1:] + [len(word)])]


def segmenter_for(texts: Sequence[str], teacher: str) -> Optional[str]:
    """`teacher` (its tokenizer cuts text written without spaces: the students read its pieces too)
    when some of `texts` needs cutting, else None (the option stays out of the stage's record)."""
    return teacher if any(needs_cutting(text) for text in texts) else None


def joined(units: Sequence[Unit]) -> str:
    return "".join(("" if glued or i == 0 else " ") + text for i, (text, glued) in enumerate(units))


class RuleAugmenter:
    """Perturbs one sentence at a time; `stats` counts what the rules did (for the rates).
    Without `neighbours` (data that is not English) a word picked for replacement is dropped."""

    def __init__(self, params: RuleParams, neighbours: Optional[Dict[str, List[str]]], rng: random.Random,
                 segmenter: Optional[Segmenter] = None):
        self.params, self.neighbours, self.rng = params, neighbours, rng
        self.segmenter = segmenter or Segmenter()
        self.stats: Counter = Counter()

    def perturb(self, text: str) -> str:
        p, rng = self.params, self.rng
        out: List[Unit] = []
        for unit, glued in self.segmenter.units(text):
            draw = rng.random()
            self.stats["tokens"] += 1
            if draw < p.p_mask:
                prefix, _, suffix = word_core(unit)
                out.append((prefix + MASK + suffix, glued))
                self.stats["masked"] += 1
            elif draw < p.p_mask + p.p_pos:
                if self.neighbours is None:
                    self.stats["dropped"] += 1
                else:
                    out.append((self.replace(unit), glued))
            else:
                out.append((unit, glued))
        self.stats["sentences"] += 1
        if out and rng.random() < p.p_ng:
            n = min(rng.randint(1, p.max_ngram), len(out))
            start = rng.randint(0, len(out) - n)
            out = out[start:start + n]
            self.stats["ngrams"] += 1
        return joined(out)

    def replace(self, token: str) -> str:
        prefix, core, suffix = word_core(token)
        options = self.neighbours.get(core.lower())
        if not options:
            self.stats["no_neighbour"] += 1
            return token
        self.stats["replaced"] += 1
        return prefix + match_case(self.rng.choice(options), core) + suffix


def rules_method(originals: Sequence, size: int, accept: Callable[[str], bool], seed: int, args,
                 progress: Callable[[int], None]) -> Tuple[List[Tuple[str, int]], Dict]:
    """Up to `size` accepted (text, parent) pairs from passes over the training sentences."""
    params = rule_params(args)
    vocabulary = {word_core(t)[1].lower() for e in originals for t in e.text.split()}
    profile = choice.profile_of([e.text for e in originals], params.language)
    neighbours = None
    if profile.english:
        words, matrix = load_word_vectors(params.vectors)
        neighbours = nearest_neighbours(vocabulary, words, matrix, params.vocab_limit, params.neighbours)
    else:
        logger.info(f"rules: the data is not English ({choice.not_english_because(profile)}): a word picked for "
                    f"replacement is dropped instead (the word vectors are English)")
    segmenter = Segmenter(load_tokenizer(resolve_model(params.segmenter)) if params.segmenter else None)
    rng = random.Random(seed)
    augmenter = RuleAugmenter(params, neighbours, rng, segmenter)
    made: List[Tuple[str, int]] = []
    attempts, idle_passes = 0, 0
    order = list(range(len(originals)))
    while len(made) < size and idle_passes < 5 and attempts < 200 * max(size, 1):
        rng.shuffle(order)
        before = len(made)
        for parent in order:
            text = augmenter.perturb(originals[parent].text)
            attempts += 1
            if accept(text):
                made.append((text, parent))
                progress(1)
                if len(made) >= size:
                    break
        idle_passes = idle_passes + 1 if len(made) == before else 0
    stats = dict(augmenter.stats)
    tokens = max(stats.get("tokens", 0), 1)
    rates = {"mask": stats.get("masked", 0) / tokens,
             "replace": (stats.get("replaced", 0) + stats.get("no_neighbour", 0) + stats.get("dropped", 0)) / tokens,
             "replaced_with_neighbour": stats.get("replaced", 0) / tokens,
             "dropped": stats.get("dropped", 0) / tokens,
             "ngram": stats.get("ngrams", 0) / max(stats.get("sentences", 0), 1)}
    info = {"params": vars(params), "attempts": attempts, "rejected": attempts - len(made),
            "vocabulary": len(vocabulary), "words_with_neighbours": len(neighbours or {}), "english": profile.english,
            "stats": stats, "observed_rates": rates}
    return made, info


def rule_params(args) -> RuleParams:
    params = RuleParams(**{f.name: getattr(args, f.name) for f in fields(RuleParams)})
    for name in ("p_mask", "p_pos", "p_ng"):
        if not 0 <= getattr(params, name) <= 1:
            raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if params.p_mask + params.p_pos > 1:
        raise UserError("--p-mask + --p-pos must not exceed 1")
    if params.max_ngram < 1 or params.neighbours < 1 or params.vocab_limit < 1:
        raise UserError("--max-ngram, --neighbours and --vocab-limit must be at least 1")
    return params


def lm_method(*args, **kwargs):
    """Tang & Lin (2019): sentences sampled from a fine-tuned causal LM (rasa_kd.transfer.lm_augment)."""
    return sample_lm(*args, **kwargs)


# Method name -> function(originals, size, accept, seed, args, progress) -> (made, info).
# `made` is a list of (text, parent index or -1); `accept(text)` is True (and records
# the text) only for a new sentence; `progress(n)` advances the bar.
METHODS: Dict[str, Callable] = {"rules": rules_method, "lm": lm_method}


# ---------------------------------------------------------------- the command


# The rule and lm settings are inherited so that their fields are flat: every field is
# a flag of `rasa-kd augment` and an attribute the methods read (args.p_mask, args.lm).
@dataclass
class AugmentOptions(LmParams, RuleParams):
    """`rasa-kd augment`'s options; see the module docstring."""

    train: Path = option(help="Rasa NLU YAML training file")
    out: Path = option(help="output transfer-set folder")
    method: str = option("rules", f"augmentation method(s), comma-separated: {', '.join(METHODS)}")
    exclude: Optional[List[Path]] = option(
        None, "Rasa NLU YAML file whose sentences must not be made (dev, test); repeatable",
        action="append", metavar="FILE")
    size: Optional[int] = option(None, "new sentences to make (default: --size-factor x the training sentences, "
                                       "at least --min-size, at most --max-size)")
    size_factor: float = option(Preset.size_factor, "the default size per training sentence")
    min_size: int = option(Preset.min_size, "floor of the default size")
    max_size: int = option(Preset.max_size, "cap of the default size")
    outliers: str = option(exposure.AUTO, "generic sentences from other domains that the student learns to be "
                                           "unsure about (outlier exposure): auto (the packaged English corpus for "
                                           "English data, none otherwise), none, or a text file of one sentence per "
                                           "line", rerun_earlier=True)
    outlier_size: Optional[int] = option(None, f"outlier sentences to add on top of --size (default "
                                               f"{exposure.SHARE:g} x the transfer set's, at most the corpus)")
    seed: int = option(42, "random seed")
    force: bool = option(False, "replace an output folder that has content")
    quiet: bool = option(False, "no progress bar")


def outlier_rows(args: AugmentOptions, originals: Sequence, size: int, accept) -> List[Tuple[str, str, int]]:
    """The outlier exposure rows (text, source, parent) `--outliers` asks for."""
    english = args.outliers != exposure.AUTO or choice.profile_of([e.text for e in originals], args.language).english
    path = exposure.corpus_file(args.outliers, english)
    if path is None:
        return []
    wanted = args.outlier_size if args.outlier_size is not None else exposure.outlier_count(len(originals) + size)
    if wanted < 0:
        raise UserError(f"--outlier-size must be at least 0, got {wanted}")
    made: List[str] = []
    for text in exposure.outlier_sentences(path, args.seed):
        if len(made) == wanted:
            break
        if accept(text):
            made.append(text)
    logger.info(f"augment: {len(made)} outlier sentences from {path.name} (outlier exposure)")
    return [(text, transfer_set.OUTLIER, transfer_set.NO_PARENT) for text in made]


def default_size(n_train: int, options) -> int:
    """New sentences to make when --size is not given: size_factor x n_train, at least
    min_size, at most max_size (the cap wins)."""
    return transfer_size(n_train, options.size_factor, options.min_size, options.max_size)


def parse_methods(spec: str) -> List[str]:
    names = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if not names or unknown:
        raise UserError(f"unknown augmentation method {', '.join(unknown) or repr(spec)} "
                        f"(available: {', '.join(METHODS)})")
    return names


AUTO = "auto"
LM_MAX_TRAIN = 500  # auto: English data with at most this many training sentences gets LM sentences


@dataclass(frozen=True)
class AugmentChoice:
    """The transfer set's recipe for `rasa-kd pipeline` and the Rasa component (`--augment`)."""

    method: str
    conditional: bool
    reason: str


def choose_augmentation(method: str, n_train: int, english: bool) -> AugmentChoice:
    """`auto` (the default): half the transfer set from SmolLM2 fine-tuned with the intent as a
    prefix for small English data (5,000 sentences at the presets' size), rules for the rest.
    Chosen on dev of 300-sentence samples (benchmarks/results/student_gap.md): dev over rules
    alone Sara +0.4, TREC +2.6, MTOD-en +0.5 points (test +2.5 / +8.8 / +0.6); 2,000 LM sentences
    were lower on dev on both sets tried. Larger data and other languages get rules alone (LM
    fine-tuning grows with the data and the LM writes English); without `rasa-kd install
    smollm2`, rules with a warning. A method named explicitly is used as given; its LM, if any,
    is intent-conditional."""
    if method != AUTO:
        return AugmentChoice(method, "lm" in parse_methods(method), "as configured")
    if not english or n_train > LM_MAX_TRAIN:
        why = "not English" if not english else f"{n_train} training sentences (LM sentences up to {LM_MAX_TRAIN})"
        return AugmentChoice("rules", False, why)
    from rasa_kd.transfer.lm_augment import DEFAULT_LM

    if not lm_installed():
        logger.warning(f"augment: rules alone: small English data gets half its transfer set from SmolLM2 when it is "
                       f"installed (rasa-kd install {DEFAULT_LM}; students 2-8 points closer to the teacher)")
        return AugmentChoice("rules", False, f"small English data, {DEFAULT_LM} not installed")
    return AugmentChoice("rules,lm", True, f"English, {n_train} training sentences (at most {LM_MAX_TRAIN})")


def lm_installed() -> bool:
    from rasa_kd.teachers.install import model_folder
    from rasa_kd.transfer.lm_augment import DEFAULT_LM

    return (model_folder(DEFAULT_LM) / "config.json").is_file()


def choice_record() -> Dict:
    """What `auto` stands for here and now (Rasa's cache must not reuse a student made otherwise)."""
    return {"lm_max_train": LM_MAX_TRAIN, "lm_installed": lm_installed()}


def split_size(size: int, parts: int) -> List[int]:
    return [size // parts + (1 if i < size % parts else 0) for i in range(parts)]


def method_shares(methods: List[str], size: int, lm_size: Optional[int]) -> List[int]:
    """Sentences per method: equal shares, or `lm_size` for the lm method (at most `size`) and
    equal shares of the rest for the others."""
    if lm_size is None or "lm" not in methods or len(methods) == 1:
        return split_size(size, len(methods))
    if lm_size < 0:
        raise UserError(f"--lm-size must be at least 0, got {lm_size}")
    lm_share = min(lm_size, size)
    others = iter(split_size(size - lm_share, len(methods) - 1))
    return [lm_share if name == "lm" else next(others) for name in methods]


def augment(args: AugmentOptions) -> Dict:
    """Build the transfer set in args.out; returns transfer.json's content."""

    methods = parse_methods(args.method)
    originals = read_examples(args.train)
    excluded = [e.text for path in args.exclude or [] for e in read_examples(path, require_intents=False)]
    size = args.size if args.size is not None else default_size(len(originals), args)
    if size < 0:
        raise UserError(f"--size must be at least 0, got {size}")
    check_output_dir(Path(args.out), args.force)
    seen: Set[str] = {transfer_set.normalised_key(t) for t in [e.text for e in originals] + excluded}

    def accept(text: str) -> bool:
        key = transfer_set.normalised_key(text)
        if not key or key in seen:
            return False
        seen.add(key)
        return True

    started = time.time()
    rows, infos = [], {}
    bar = tqdm(total=size, desc="augment", unit="sent", disable=args.quiet)
    for offset, (name, share) in enumerate(zip(methods, method_shares(methods, size, args.lm_size))):
        made, infos[name] = METHODS[name](originals, share, accept, args.seed + offset, args, bar.update)
        rows += [(text, name, parent) for text, parent in made]
    if len(rows) < size and "lm" in methods and "rules" in methods:  # the LM ran out of new sentences
        made, _ = rules_method(originals, size - len(rows), accept, args.seed + len(methods), args, bar.update)
        rows += [(text, "rules", parent) for text, parent in made]
        infos["rules"]["after_lm"] = len(made)
        logger.info(f"augment: the rules made {len(made)} more sentences where the LM ran out of new ones")
    bar.close()
    rows += outlier_rows(args, originals, size, accept)
    seconds = time.time() - started
    data = {
        transfer_set.TEXT: [e.text for e in originals] + [r[0] for r in rows],
        transfer_set.SOURCE: ["original"] * len(originals) + [r[1] for r in rows],
        transfer_set.PARENT: list(range(len(originals))) + [r[2] for r in rows],
        transfer_set.INTENT: [e.intent for e in originals] + [""] * len(rows),
        transfer_set.ENTITIES: [json.dumps(e.entities, ensure_ascii=False) for e in originals] + [None] * len(rows),
    }
    counts = dict(Counter(data[transfer_set.SOURCE]))
    meta = {"format": transfer_set.FORMAT, "version": transfer_set.VERSION, "size": len(data[transfer_set.TEXT]),
            "requested": size, "counts": counts, "seed": args.seed, "method": ",".join(methods),
            "params": {name: info.pop("params", {}) for name, info in infos.items()},
            "methods": infos, "train": str(args.train), "exclude": [str(p) for p in args.exclude or []],
            "rejected": sum(info.get("rejected", 0) for info in infos.values()), "seconds": round(seconds, 2)}

    with atomic_output_dir(args.out, args.force) as tmp:
        datasets.Dataset.from_dict(data, features=transfer_set.features()).save_to_disk(str(tmp))
        (tmp / transfer_set.META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
    made = sum(source != transfer_set.OUTLIER for _, source, _ in rows)
    if made < size:
        logger.warning(f"warning: made only {made} of {size} sentences: {', '.join(methods)} ran out of new sentences "
                       f"(rules: raise --p-mask/--p-pos/--p-ng; lm: raise --temperature/--top-p; or add training data)")
    logger.info(f"augment -> {args.out}: {made} new sentences + {len(originals)} originals"
                f"{f' + {len(rows) - made} outliers' if len(rows) > made else ''}, "
                f"{meta['rejected']} duplicates rejected, {seconds:.1f} s")
    return meta
