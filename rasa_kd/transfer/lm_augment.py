"""Language-model augmentation (Tang & Lin 2019): fine-tune a causal LM on the training
sentences, then sample new sentences from it for the transfer set.

Fine-tuning: each training sentence is one sequence, `BOS sentence EOS`; with
`conditional`, `BOS intent : sentence EOS`, so that sampling can be steered per
intent (the teacher still labels every generated sentence). `transformers.Trainer`
trains it, with early stopping on the dev sentences' loss (perplexity = exp(loss)).
The fine-tuned LM is saved to `<work>/lm` so that sampling can be re-run alone.

Sampling writes shards of accepted sentences to `<work>/shards/` as it goes
(`shard-00000.json`: a JSON list of [text, intent-or-null]). Shard k is sampled
with seed `seed + k`, so a run that is killed and re-run continues from the shards
on disk, with no repeats and the same result as an uninterrupted run.
"""
import json
import logging
import math
import os
import random
import time
from collections import Counter, defaultdict
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import datasets
import hashlib
import shutil

import torch

from tqdm import tqdm

from transformers import (AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback, Trainer, TrainingArguments,
                          set_seed)

from rasa_kd.errors import UserError
from rasa_kd.formats.digests import file_digest
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.outputs import atomic_output_dir
from rasa_kd.formats.transfer_set import normalised_key
from rasa_kd.options import option

logger = logging.getLogger(__name__)

PREFIX_SEPARATOR = " : "
LM_FOLDER = "lm"
SHARDS_FOLDER = "shards"


def training_sequence(text: str, intent: Optional[str]) -> str:
    return f"{intent}{PREFIX_SEPARATOR}{text}" if intent else text


DEFAULT_LM = "smollm2"  # the one causal LM installable offline: `rasa-kd install smollm2`


def load_lm(name_or_path: str):
    """(model, tokenizer) of any AutoModelForCausalLM checkpoint: `smollm2` (installed by
    `rasa-kd install smollm2`), a local folder or a hub id."""
    if name_or_path == DEFAULT_LM:
        from rasa_kd.teachers.install import installed_model

        name_or_path = str(installed_model(DEFAULT_LM))
    path = Path(name_or_path).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path) if path.exists() else name_or_path)
        model = AutoModelForCausalLM.from_pretrained(str(path) if path.exists() else name_or_path)
    except (OSError, ValueError) as error:
        if path.exists():
            raise UserError(f"{path}: not a causal language model: {' '.join(str(error).split())[:200]}") from error
        raise UserError(
            f"{name_or_path}: causal LM not found: no such local folder, and the model hub is unreachable "
            f"from here or has no such model. Give a local folder with --lm (e.g. a GPT-2 saved with "
            f"save_pretrained), or set HF_HUB_OFFLINE=1 with the model in the Hugging Face cache (HF_HOME)"
        ) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _sequence_ids(tokenizer, text: str, max_length: int) -> List[int]:
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 2]
    return [start, *ids, tokenizer.eos_token_id]


def _collate(tokenizer):
    """Pad a batch; labels ignore padding by attention mask, not by pad id (GPT-2's pad is its
    EOS, and a pad-id mask would hide every EOS, so the LM would never learn to stop)."""
    def collate(features):
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
            mask[row, : len(feature["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}

    return collate


def finetune_lm(lm: str, train: Sequence[Tuple[str, Optional[str]]], dev: Sequence[Tuple[str, Optional[str]]],
                out: Path, epochs: int = 10, learning_rate: float = 5e-4, batch_size: int = 32,
                max_length: int = 64, seed: int = 42, patience: int = 2) -> Dict[str, float]:
    """Fine-tune `lm` on (text, intent-or-None) pairs; saves the best model by dev loss to `out`."""
    set_seed(seed)
    model, tokenizer = load_lm(lm)

    def encode(pairs):
        return datasets.Dataset.from_dict(
            {"input_ids": [_sequence_ids(tokenizer, training_sequence(t, i), max_length) for t, i in pairs]})

    if not dev:
        shuffled = list(train)
        random.Random(seed).shuffle(shuffled)
        n_dev = max(1, len(shuffled) // 10)
        dev, train = shuffled[:n_dev], shuffled[n_dev:]
    checkpoints = out.parent / f".{out.name}-checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False, save_total_limit=2,
        logging_strategy="epoch", report_to=[], seed=seed, disable_tqdm=False, warmup_ratio=0.05,
    )
    trainer = Trainer(model=model, args=args, train_dataset=encode(train), eval_dataset=encode(dev),
                      data_collator=_collate(tokenizer),
                      callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)])
    start_loss = trainer.evaluate()["eval_loss"]
    trainer.train()
    end_loss = trainer.evaluate()["eval_loss"]
    metrics = {"dev_loss_before": start_loss, "dev_loss_after": end_loss,
               "dev_perplexity_before": math.exp(min(start_loss, 50)),
               "dev_perplexity_after": math.exp(min(end_loss, 50))}

    with atomic_output_dir(out, force=True) as folder:  # a killed save never looks finished
        trainer.save_model(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "lm_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    shutil.rmtree(checkpoints, ignore_errors=True)
    return metrics


def intent_quota(intents: Iterable[str], size: int, balance: bool) -> Dict[str, int]:
    """Sentences to sample per intent: proportional to the training counts (largest remainder)
    or, with `balance`, equal for every intent. The quotas sum to `size`."""
    counts = Counter(intents)
    names = sorted(counts)
    weights = {name: 1 if balance else counts[name] for name in names}
    total = sum(weights.values())
    exact = {name: size * weights[name] / total for name in names}
    quota = {name: int(exact[name]) for name in names}
    by_remainder = sorted(names, key=lambda n: (exact[n] - quota[n], weights[n]), reverse=True)
    for name in by_remainder[: size - sum(quota.values())]:
        quota[name] += 1
    return quota


def normalised(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Shard:
    """One batch of one intent: the sentences it added and how many samples it drew."""

    intent: Optional[str]
    drawn: int
    rows: List[Tuple[str, Optional[str]]]


def _read_shards(folder: Path) -> List[Shard]:
    shards = []
    for path in sorted(folder.glob("shard-*.json")):
        data = json.loads(path.read_text())
        shards.append(Shard(data["intent"], data["drawn"], [tuple(row) for row in data["rows"]]))
    return shards


def _write_shard(folder: Path, index: int, shard: Shard) -> None:
    path = folder / f"shard-{index:05d}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(shard), ensure_ascii=False))
    os.replace(tmp, path)


def sampling_dtype():
    """bfloat16 where the CPU computes it natively (AVX512-BF16/AMX: sampling 1.8x faster on our
    machines), float32 elsewhere (emulated bfloat16 would be slower)."""
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
    except (AttributeError, RuntimeError):
        return torch.float32


LENGTH_MARGIN = 1.5  # a sample may be this much longer (in tokens) than its intent's longest training sentence


class Sampler:
    """Batched sampling from a fine-tuned LM, steered by an optional intent prefix.

    A batch runs until its longest sample ends, so one rambling sample would keep it going for
    `max_new_tokens` steps: each intent's samples are cut at LENGTH_MARGIN x the tokens of its
    longest `training` sentence, and a sample that has not ended by then is rejected rather than
    kept truncated. The last batch of an intent shrinks to about twice what it still needs."""

    def __init__(self, lm_dir: Path, top_k: int, top_p: float, temperature: float,
                 max_new_tokens: int, batch_size: int, training: Sequence[Tuple[str, Optional[str]]] = ()):
        self.torch = torch
        self.model, self.tokenizer = load_lm(str(lm_dir))
        self.model.to(sampling_dtype()).eval()
        self.top_k, self.top_p, self.temperature = top_k, top_p, temperature
        self.batch_size = batch_size
        self.new_tokens = self._new_tokens(training, max_new_tokens)

    def _new_tokens(self, training, max_new_tokens: int) -> Dict[Optional[str], int]:
        longest: Dict[Optional[str], int] = {}
        for text, intent in training:
            tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # + EOS
            for key in {intent, None}:
                longest[key] = max(longest.get(key, 0), tokens)
        caps = {key: min(max_new_tokens, math.ceil(LENGTH_MARGIN * n)) for key, n in longest.items()}
        return defaultdict(lambda: caps.get(None, max_new_tokens), caps)

    def sample(self, intent: Optional[str], seed: int, wanted: Optional[int] = None) -> List[Optional[str]]:
        """Up to batch_size samples (fewer when `wanted` is small); None for one that did not end."""
        prompt = _sequence_ids(self.tokenizer, f"{intent}{PREFIX_SEPARATOR.rstrip()}" if intent else "", 10_000)[:-1]
        rows = self.batch_size if wanted is None else min(self.batch_size, max(8, 2 * wanted))
        self.torch.manual_seed(seed)
        with self.torch.inference_mode():
            pieces, ended = self.decode(prompt, rows, self.new_tokens[intent])
        texts = self.tokenizer.batch_decode(pieces, skip_special_tokens=True)
        return [normalised(text) if done else None for text, done in zip(texts, ended)]

    def decode(self, prompt: List[int], rows: int, max_new_tokens: int) -> Tuple[List[List[int]], List[bool]]:
        """Sample `rows` continuations of `prompt`: (token ids, ended with EOS) per row.

        `generate` keeps computing a row after its EOS until the whole batch has ended; here an
        ended row leaves the batch and the KV cache, so a batch costs about the sum of its
        samples' lengths instead of rows x the longest (short sentences, ~2x fewer steps)."""
        from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, \
            TopPLogitsWarper

        warpers = LogitsProcessorList(
            ([TemperatureLogitsWarper(self.temperature)] if self.temperature != 1.0 else [])
            + ([TopKLogitsWarper(self.top_k)] if self.top_k else [])
            + ([TopPLogitsWarper(self.top_p)] if self.top_p < 1.0 else []))
        eos = self.tokenizer.eos_token_id
        inputs = self.torch.tensor([prompt] * rows)
        cache = DynamicCache()
        logits = self.model(input_ids=inputs, past_key_values=cache, use_cache=True).logits[:, -1, :]
        live = list(range(rows))  # the original row of each row still in the batch
        pieces: List[List[int]] = [[] for _ in range(rows)]
        ended = [False] * rows
        for step in range(max_new_tokens):
            scores = warpers(inputs, logits.float())
            chosen = self.torch.multinomial(self.torch.softmax(scores, dim=-1), 1).squeeze(1)
            going = []
            for position, (row, token) in enumerate(zip(live, chosen.tolist())):
                if token == eos:
                    ended[row] = True
                else:
                    pieces[row].append(token)
                    going.append(position)
            if not going or step == max_new_tokens - 1:
                break
            if len(going) < len(live):
                keep = self.torch.tensor(going)
                cache.batch_select_indices(keep)
                chosen, live = chosen[keep], [live[i] for i in going]
            inputs = chosen.unsqueeze(1)
            logits = self.model(input_ids=inputs, past_key_values=cache, use_cache=True).logits[:, -1, :]
        return pieces, ended


DRAW_BUDGET = 3  # samples drawn per sentence wanted, per intent, before the LM is out of new ones


def sample_sentences(lm_dir: Union[Path, Callable[[], Path]], work: Path, size: int,
                     training: Sequence[Tuple[str, Optional[str]]], seed: int = 42,
                     quota: Optional[Dict[str, int]] = None, top_k: int = 0, top_p: float = 0.95,
                     temperature: float = 1.0, max_new_tokens: int = 48, batch_size: int = 64,
                     draw_budget: float = DRAW_BUDGET, progress: bool = True) -> List[Tuple[str, Optional[str]]]:
    """Up to `size` unique new sentences as (text, intent-prefix-or-None), resuming from shards in `work`.

    `quota` (intent -> count) samples per intent with the intent prefix; without it,
    sampling is unconditional. The `training` (text, intent) pairs are rejected when sampled
    and bound the samples' length (see Sampler); repeats are rejected. An intent whose draws reach
    `draw_budget` x its quota gets no more: few examples of an intent leave the LM little new to
    say (the demo's 20-sentence intents: 91 % repeats after 2,400 sentences), and the caller fills
    the rest otherwise. `lm_dir` may be a function that returns the LM folder: it is called only
    when the shards on disk are too few (so that an LM is fine-tuned only when sampling is needed).
    """

    shard_dir = work / SHARDS_FOLDER
    shard_dir.mkdir(parents=True, exist_ok=True)
    shards = _read_shards(shard_dir)
    accepted = [row for shard in shards for row in shard.rows]
    # "The same sentence" as the transfer set defines it (whitespace and case), so the
    # augment command's own uniqueness check does not reject what was sampled here.
    seen = {normalised_key(t) for t, _ in training} | {normalised_key(text) for text, _ in accepted}
    plan = dict(quota) if quota else {None: size}
    made = Counter(intent for _, intent in accepted)
    drawn = Counter()
    for shard in shards:
        drawn[shard.intent] += shard.drawn

    def next_intent() -> Optional[str]:
        return next((i for i in sorted(plan, key=str) if made[i] < plan[i] and drawn[i] < draw_budget * plan[i]),
                    "")  # "" = nothing left to sample ("" is never an intent; None is unconditional)

    intent = next_intent()
    if intent == "":
        return accepted[:size]
    folder = lm_dir() if callable(lm_dir) else lm_dir  # fine-tunes first when it must: a bar of its own
    sampler = Sampler(folder, top_k, top_p, temperature, max_new_tokens, batch_size, training)
    started, resumed = time.time(), len(accepted)
    bar = tqdm(total=size, initial=resumed, desc="sampling", unit="sent", disable=not progress)
    index = len(shards)
    while intent != "":
        shard = Shard(intent, 0, [])
        for text in sampler.sample(intent, seed + index, plan[intent] - made[intent]):
            shard.drawn += 1
            key = normalised_key(text or "")
            if text and key not in seen and made[intent] < plan[intent]:
                seen.add(key)
                made[intent] += 1
                shard.rows.append((text, intent))
        _write_shard(shard_dir, index, shard)
        accepted.extend(shard.rows)
        drawn[intent] += shard.drawn
        index += 1
        bar.update(len(shard.rows))
        bar.set_postfix(sent_per_s=f"{(len(accepted) - resumed) / max(time.time() - started, 1e-9):.1f}",
                        rejected=f"{1 - len(accepted) / max(sum(drawn.values()), 1):.0%}")
        intent = next_intent()
    short = {str(i): plan[i] - made[i] for i in plan if made[i] < plan[i]}
    if short:
        logger.info(f"lm sampling: the LM ran out of new sentences for {len(short)} intent(s) after {draw_budget}x "
                    f"their quota of samples ({sum(short.values())} sentences short: "
                    f"{', '.join(f'{i} {n}' for i, n in sorted(short.items())[:8])}{' ...' if len(short) > 8 else ''})")
    bar.close()
    logger.info(f"lm sampling: {len(accepted)} sentences from {sum(drawn.values())} samples (the rest repeats, "
                f"training sentences or too long), {time.time() - started:.1f} s")
    return accepted[:size]


# ---------------------------------------------------------------- `rasa-kd augment --method lm`


LM = "lm method (Tang & Lin 2019): fine-tuned causal LM sampling"


@dataclass
class LmParams:
    """The lm method's settings: the `lm` group of `rasa-kd augment`'s options."""

    lm: str = option(DEFAULT_LM, "causal LM to fine-tune: smollm2 (SmolLM2-135M, after `rasa-kd install smollm2`), "
                                 "a local folder or a hub id (see docs/user-guide.md)", group=LM)
    lm_from: Optional[Path] = option(None, "an LM already fine-tuned by a previous run (OUT.lm-work/lm): "
                                           "skip fine-tuning, only sample", group=LM)
    lm_work: Optional[Path] = option(None, "work folder: fine-tuned LM and sample shards, kept for resuming "
                                           "(default OUT.lm-work)", group=LM)
    lm_dev: Optional[Path] = option(None, "NLU file whose sentences early-stop LM fine-tuning "
                                          "(default: 10%% of the training sentences)", group=LM)
    lm_epochs: int = option(10, "maximum fine-tuning epochs", group=LM)
    lm_lr: float = option(5e-5, "fine-tuning learning rate", group=LM)
    lm_batch_size: int = option(16, "fine-tuning batch size", group=LM)
    lm_size: Optional[int] = option(None, "LM sentences when other methods share the transfer set (default: an "
                                          "equal share); the other methods make the rest", group=LM)
    sample_batch_size: int = option(64, "sentences per generate call", group=LM)
    top_k: int = option(0, "top-k sampling (0 = off, the default)", group=LM)
    top_p: float = option(0.95, "nucleus sampling mass", group=LM)
    temperature: float = option(1.0, "sampling temperature", group=LM)
    conditional: bool = option(False, "fine-tune with the intent as a prefix ('<intent> : sentence') and sample "
                                      "per intent", group=LM)
    balance: bool = option(False, "conditional: the same number of sentences for every intent "
                                  "(default: as in training)", group=LM)


def prepare_lm(args, originals: Sequence, work: Path, seed: int) -> Tuple[Path, Dict]:
    """The fine-tuned LM folder: --lm-from, one fine-tuned by an earlier run, or a new one."""
    if args.lm_from:
        if not (Path(args.lm_from) / "config.json").is_file():
            raise UserError(f"{args.lm_from}: not a fine-tuned LM folder (no config.json)")
        return Path(args.lm_from), {}
    lm_dir = work / LM_FOLDER
    if (lm_dir / "config.json").is_file():
        logger.info(f"lm: reusing the fine-tuned LM in {lm_dir}")
        return lm_dir, json.loads((lm_dir / "lm_metrics.json").read_text())

    def pairs(examples):
        return [(e.text, e.intent if args.conditional else None) for e in examples]

    dev = pairs(read_examples(args.lm_dev)) if args.lm_dev else []
    metrics = finetune_lm(args.lm, pairs(originals), dev, lm_dir, epochs=args.lm_epochs,
                          learning_rate=args.lm_lr, batch_size=args.lm_batch_size, seed=seed)
    logger.info(f"lm: fine-tuned {args.lm}: dev perplexity {metrics['dev_perplexity_before']:.1f} -> "
                f"{metrics['dev_perplexity_after']:.1f}")
    return lm_dir, metrics


SAMPLES_CACHE = "lm-samples"
SAMPLER_VERSION = 4  # 2: cut by length, 3: ended rows leave the batch, 4: draw budget and shard format; cache key


def samples_folder(args, originals: Sequence, seed: int, settings: Dict, work: Path) -> Path:
    """Where the sample shards go. An LM fine-tuned here is named by what it learns from: the
    base LM, the training sentences (and intents), the dev file's content and the fine-tuning
    settings; with the seed and the sampling settings they fix the samples, which therefore go to
    the cache folder under that name: a re-run on the same data (`rasa train` after `rasa-kd
    pipeline`, or the same assistant retrained) samples nothing and fine-tunes nothing. An LM from
    --lm-from is named by its folder, and its samples stay in the work folder."""
    from rasa_kd.teachers.install import cache_root

    if args.lm_from:
        key = json.dumps([str(args.lm_from), seed, args.conditional, args.balance, settings, SAMPLER_VERSION])
        return work / f"samples-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    dev = file_digest(args.lm_dev) if args.lm_dev else None
    record = [args.lm, [[e.text, e.intent] for e in originals], dev, args.lm_epochs, args.lm_lr, args.lm_batch_size,
              seed, args.conditional, args.balance, settings, SAMPLER_VERSION]
    return cache_root() / SAMPLES_CACHE / hashlib.sha256(json.dumps(record).encode()).hexdigest()[:16]


def lm_method(originals: Sequence, size: int, accept, seed: int, args, progress) -> Tuple[List[Tuple[str, int]], Dict]:
    """The `lm` method of `rasa-kd augment` (see augment.METHODS): `size` accepted (text, -1) pairs.

    Sentences the sampler returns can still be refused by `accept` (an --exclude sentence,
    or one another method made); it then samples more, resuming from its shards."""
    work = Path(args.lm_work or f"{args.out}.lm-work")
    settings = dict(top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
                    batch_size=args.sample_batch_size)
    # the quotas follow the size; bfloat16 and float32 draw different samples
    samples = samples_folder(args, originals, seed, {**settings, "size": size, "dtype": str(sampling_dtype())}, work)
    fine_tuned: Dict = {}

    def lm_dir() -> Path:  # fine-tuned (or re-used) only when the shards on disk are too few
        if not fine_tuned:
            fine_tuned["dir"], fine_tuned["info"] = prepare_lm(args, originals, work, seed)
        return fine_tuned["dir"]

    intents = [e.intent for e in originals]
    made: List[Tuple[str, int]] = []
    checked, wanted = 0, size
    while len(made) < size:
        quota = intent_quota(intents, wanted, args.balance) if args.conditional else None
        sampled = sample_sentences(lm_dir, samples, wanted, [(e.text, e.intent) for e in originals], seed=seed,
                                   quota=quota, draw_budget=DRAW_BUDGET, progress=not args.quiet, **settings)
        for text, _ in sampled[checked:]:
            if len(made) < size and accept(text):
                made.append((text, -1))
                progress(1)
        checked = len(sampled)
        if len(sampled) < wanted:
            break  # the LM ran out of new sentences; sample_sentences said so
        wanted += size - len(made)
    logger.info("lm: 20 sampled sentences, for a human to judge:")
    for text, _ in made[:20]:
        logger.info(f"  {text}")
    params = {"lm": args.lm, "lm_from": str(args.lm_from or ""), "conditional": args.conditional,
              "balance": args.balance, "epochs": args.lm_epochs, "lr": args.lm_lr, **settings}
    return made, {"params": params, "finetune": fine_tuned.get("info", {}), "lm_dir": str(fine_tuned.get("dir", "")),
                  "samples": str(samples), "sampled": checked, "rejected": checked - len(made)}
