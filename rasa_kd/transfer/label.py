"""`rasa-kd label`: add the teacher's logits to a transfer set.

Rows are sorted by token length and run in batches (`torch.inference_mode`, all
available cores), so padding stays small. With several --teacher folders (an
ensemble) the teachers must have identical labels.json; their logits are averaged.

Entities: teachers with an entity tag head (`rasa-kd teacher --entities auto`) also give
each sentence's tag logits per piece (`tag_logits`, `tag_spans`), from the forward pass that gives
its intent logits (the backbone runs once per batch): the pieces are the first
such teacher's; another joint teacher's logits (same tags.json) are averaged in at the piece
that covers each piece's first character.

Resumable: work goes to shards next to the output, `.<OUT name>.label-shards/`
(`plan.json` plus `shard-00012.npz`, each holding the row `indices` (int64), their
`logits` (float32) and, with entity tags, their tag logits and spans, written atomically). Shard k always holds the same rows,
so a killed run, re-run with the same arguments, labels only the missing shards:
no row is lost or repeated, and the logits equal those of an uninterrupted run.
A changed transfer set, teacher or batching starts afresh. The shards are deleted
once the output is complete.

Several processes (`torchrun --nproc_per_node N -m rasa_kd.cli label ...`, or
`accelerate launch`; see rasa_kd.distributed): of the missing shards, process r labels
the r-th, (r+N)-th, ... into the same shard folder (which must be on a file system
they share), each on its share of the cores or on its own GPU; the main process then
writes the one output.
The shards are the same as a single process's, so the output is too, and a killed
run resumes with any number of processes.

Output folder (written all-or-nothing; format in rasa_kd/formats/transfer_set.py):
  Arrow dataset   the transfer set's columns + `logits` (list of float32, one per label)
  labels.json     the teacher's label names, the order of the logits
  tags.json       with joint teachers: the entity tag names, the order of tag_logits
  label.json      teachers, rows, throughput (sentences/s), seconds, batching, threads; with
                  outlier rows, how many got flat targets (`outliers`)

Outlier rows (source `outlier`, rasa_kd.transfer.outliers): their logits are replaced by a flat
row unless the teacher's sentence vector of the sentence is as close to a training sentence as the
training sentences are to each other (the vectors are read from the same forward pass).
  transfer.json   copied from the transfer set (when it has one)
"""
import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import datasets

import numpy as np

import pyarrow as pa

import torch

from tqdm import tqdm

from rasa_kd import distributed
from rasa_kd.errors import UserError
from rasa_kd.formats import transfer_set
from rasa_kd.formats.outputs import atomic_output_dir, check_output_dir
from rasa_kd.formats.transfer_set import TEXT
from rasa_kd.nlu_data.entity_tags import covering_pieces
from rasa_kd.options import option
from rasa_kd.teachers.folder import TeacherFolder, classifier_inputs, length_order, same_labels

logger = logging.getLogger(__name__)


@dataclass
class LabelOptions:
    """`rasa-kd label`'s options; see the module docstring."""

    teacher: List[Path] = option(help="teacher folder from `rasa-kd teacher`; repeat for an ensemble "
                                      "(logits averaged)", action="append")
    transfer: Path = option(help="transfer-set folder from `rasa-kd augment`")
    out: Path = option(help="output folder: the labelled transfer set")
    batch_size: int = option(64, "sentences per batch")
    shard_size: int = option(4096, "sentences per resumable shard, a multiple of --batch-size")
    max_length: Optional[int] = option(None, "maximum tokens per sentence (default: each teacher's own, "
                                             "from rasa_kd_teacher.json)")
    vectors: bool = option(False, "also write each sentence's teacher sentence vector (what its classifier "
                                  "reads; an ensemble's concatenated), for `rasa-kd distil --vector-weight`")
    threads: Optional[int] = option(None, "torch threads (default: all available cores)")
    force: bool = option(False, "replace an output folder that has content")
    quiet: bool = option(False, "no progress bar")


def load_teachers(paths: Sequence[Path], max_length: int = None, device=None) -> List[TeacherFolder]:
    """The ensemble's teacher folders, checked to share one label list (and its taggers one tag list)."""
    teachers = [TeacherFolder(p, max_length, device) for p in paths]
    for folder in teachers:
        if not folder.is_classifier:
            raise UserError(f"{folder.path}: not a teacher folder (needs config.json and labels.json; "
                            f"make one with `rasa-kd teacher`)")
    same_labels(teachers)
    taggers = [t for t in teachers if t.tags]
    for other in taggers[1:]:
        if other.tags != taggers[0].tags:
            raise UserError(f"{other.path}: tags.json differs from {taggers[0].path}'s (an ensemble of joint "
                            f"teachers needs identical tag lists in the same order)")
    return teachers


def shards_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.label-shards"


def shard_rows(order: Sequence[int], batch_size: int, shard_size: int) -> List[List[int]]:
    """Consecutive slices of the length-sorted row order; a shard is a whole number of batches."""
    rows = max(batch_size, shard_size // batch_size * batch_size)
    return [list(order[i:i + rows]) for i in range(0, len(order), rows)]


def prepare_work(work: Path, plan: Dict) -> None:
    """Keep shards of the same plan; anything else in `work` is stale and removed."""
    plan_file = work / "plan.json"
    if work.exists():
        try:
            same = json.loads(plan_file.read_text()) == plan
        except (OSError, ValueError):
            same = False
        if same:
            return
        shutil.rmtree(work)
    work.mkdir(parents=True)
    plan_file.write_text(json.dumps(plan, indent=1))


def shard_path(work: Path, k: int) -> Path:
    return work / f"shard-{k:05d}.npz"


def write_shard(path: Path, indices, logits, extras: Optional[Dict[str, np.ndarray]] = None) -> None:
    """`extras`: the tag arrays of `tag_shard` and/or `vectors` [rows, width]."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, indices=np.asarray(indices, dtype=np.int64), logits=np.asarray(logits, dtype=np.float32),
                 **(extras or {}))
    os.replace(tmp, path)


class TokenIds:
    """Every sentence's token ids in two flat arrays, read from the Arrow transfer set chunk by
    chunk: at 1M sentences a Python list of id lists would cost about ten times the memory."""

    def __init__(self, teacher: TeacherFolder, dataset, chunk: int = 16_384):
        lengths, flat = [], []
        for start in range(0, len(dataset), chunk):
            rows = teacher.encode(dataset[start:start + chunk][TEXT])
            lengths.append(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)))
            flat.append(np.fromiter((i for row in rows for i in row), dtype=np.int32))
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.flat = np.concatenate(flat) if flat else np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, row: int) -> List[int]:
        return self.flat[self.offsets[row]:self.offsets[row + 1]].tolist()


def text_fingerprint(dataset, chunk: int = 16_384) -> str:
    """SHA-1 of the sentences joined by newlines, read chunk by chunk."""
    digest = hashlib.sha1()
    for start in range(0, len(dataset), chunk):
        digest.update(("\n" if start else "").encode() + "\n".join(dataset[start:start + chunk][TEXT]).encode("utf-8"))
    return digest.hexdigest()


def label_shard(teachers: List[TeacherFolder], encoded: List[TokenIds], rows: List[int], batch_size: int,
                vectors: bool = False):
    """Averaged logits of `rows`, batch by batch; each joint teacher's tag logits per row (with
    specials, in `rows`' order) from the same forward pass: {teacher index: [row arrays]}; with
    `vectors` the teachers' sentence vectors, concatenated, [rows, width] (else None)."""
    out = np.zeros((len(rows), len(teachers[0].labels)), dtype=np.float32)
    raw_tags: Dict[int, List[np.ndarray]] = {k: [] for k, teacher in enumerate(teachers) if teacher.tags}
    vector_batches: List[np.ndarray] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        parts = []
        for k, (teacher, ids) in enumerate(zip(teachers, encoded)):
            batch_ids = [ids[i] for i in batch]
            capture = classifier_inputs(teacher.joint if k in raw_tags else teacher.classifier) if vectors else None
            with capture or contextlib.nullcontext([]) as captured:
                if k in raw_tags:
                    logits, tag_logits = teacher.batch_logits_and_tags(batch_ids)
                    raw_tags[k] += tag_logits
                else:
                    logits = teacher.batch_logits(batch_ids)
            parts += captured
            out[start:start + len(batch)] += logits
        if vectors:
            vector_batches.append(np.concatenate(parts, axis=1))
    return out / len(teachers), raw_tags, (np.concatenate(vector_batches) if vectors else None)


def on_pieces(spans: np.ndarray, other_spans: np.ndarray, other_logits: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Another teacher's tag logits on these pieces (`covering_pieces`); the piece's own logits where
    it has none (truncated)."""
    out = own.copy()
    found = covering_pieces(spans, other_spans)
    out[found >= 0] = other_logits[found[found >= 0]]
    return out


def tag_shard(taggers: List[TeacherFolder], texts: Sequence[str], raw_tags: Sequence[List[np.ndarray]]):
    """The taggers' averaged tag logits of `texts` (`raw_tags`: each tagger's logits per text, with
    specials), flat: tag_lengths [rows], tag_logits [pieces, tags], tag_spans [pieces, 2] (the
    first tagger's pieces)."""
    first, *others = [tagger.tags_on_pieces(texts, raw) for tagger, raw in zip(taggers, raw_tags)]
    rows = []
    for row, (logits, spans) in enumerate(first):
        total = logits.copy()
        for other in others:
            total += on_pieces(spans, other[row][1], other[row][0], logits)
        rows.append((total / len(taggers), spans))
    width = len(taggers[0].tags)
    return {"tag_lengths": np.array([len(spans) for _, spans in rows], dtype=np.int64),
            "tag_logits": np.concatenate([l for l, _ in rows]).astype(np.float32) if rows else np.zeros((0, width)),
            "tag_spans": np.concatenate([s for _, s in rows]).astype(np.int32) if rows else np.zeros((0, 2))}


def assemble(work: Path, n_shards: int, n_rows: int, n_labels: int):
    """The N x labels logits from the shards, checking every row appears exactly once, the
    rows' (tag logits, tag spans) when the shards hold tags and their sentence vectors when the
    shards hold them (else None each)."""
    logits = np.zeros((n_rows, n_labels), dtype=np.float32)
    seen = np.zeros(n_rows, dtype=np.int64)
    tags: Optional[List] = None
    vectors: Optional[np.ndarray] = None
    for k in range(n_shards):
        with np.load(shard_path(work, k)) as shard:
            logits[shard["indices"]] = shard["logits"]
            np.add.at(seen, shard["indices"], 1)
            if "vectors" in shard:
                if vectors is None:
                    vectors = np.zeros((n_rows, shard["vectors"].shape[1]), dtype=np.float32)
                vectors[shard["indices"]] = shard["vectors"]
            if "tag_lengths" in shard:
                tags = tags or [None] * n_rows
                lengths, tag_logits, tag_spans = shard["tag_lengths"], shard["tag_logits"], shard["tag_spans"]
                for row, end, length in zip(shard["indices"], np.cumsum(lengths), lengths):
                    tags[row] = (tag_logits[end - length:end], tag_spans[end - length:end])
    if not (seen == 1).all():
        raise UserError(f"{work}: shards cover {int((seen > 0).sum())} of {n_rows} rows "
                        f"({int((seen > 1).sum())} repeated); delete the folder and re-run")
    return logits, tags, vectors


def nested_lists(rows: Sequence[np.ndarray], value_type) -> pa.Array:
    """Arrow list<list<value_type>> from one 2-D array per row."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = rows[0].shape[1] if len(rows) else 0
    flat = np.concatenate([r.reshape(-1, width) for r in rows]) if len(rows) else np.zeros((0, width))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, len(flat) * width + 1, width, dtype=np.int32)),
                                     pa.array(flat.reshape(-1), type=value_type))
    return pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)), inner)


def float_lists(rows: np.ndarray) -> pa.Array:
    """Arrow list<float32> from a 2-D array, one list per row."""
    n, width = rows.shape
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(rows.reshape(-1), type=pa.float32()))


def with_logits(dataset, logits, tags: Optional[Sequence] = None, vectors: Optional[np.ndarray] = None):
    """The dataset with the logits column (and, given per-row (tag logits, spans), the tag columns;
    given sentence vectors, the vectors column)."""
    stale = [c for c in (transfer_set.LOGITS, transfer_set.TAG_LOGITS, transfer_set.TAG_SPANS, transfer_set.VECTORS)
             if c in dataset.column_names]
    if stale:
        dataset = dataset.remove_columns(stale)
    table = dataset.data.table.append_column(transfer_set.LOGITS, float_lists(logits))
    if vectors is not None:
        table = table.append_column(transfer_set.VECTORS, float_lists(vectors))
    if tags is not None:
        table = table.append_column(transfer_set.TAG_LOGITS, nested_lists([t[0] for t in tags], pa.float32()))
        table = table.append_column(transfer_set.TAG_SPANS, nested_lists([t[1] for t in tags], pa.int32()))
    return datasets.Dataset(datasets.table.InMemoryTable(table))


def label(args: LabelOptions) -> Dict:
    """Write the labelled transfer set to args.out; returns label.json's content (in the
    main process; the others of a launcher return {})."""

    out = Path(args.out)
    if args.batch_size < 1 or args.shard_size < 1:
        raise UserError("--batch-size and --shard-size must be at least 1")
    dataset = transfer_set.open_transfer(args.transfer).dataset
    check_output_dir(out, args.force)
    torch.set_num_threads(args.threads or distributed.threads_per_process())
    teachers = load_teachers(args.teacher, args.max_length, distributed.device())
    n_rows = len(dataset)
    encoded = [TokenIds(t, dataset) for t in teachers]
    order = length_order(encoded[0].lengths.tolist())
    shards = shard_rows(order, args.batch_size, args.shard_size)
    taggers = [t for t in teachers if t.tags]
    sources = np.array(transfer_set.sources_of(dataset))
    has_outliers = bool((sources == transfer_set.OUTLIER).any())
    capture = args.vectors or has_outliers
    plan = {"transfer": str(Path(args.transfer).resolve()), "rows": n_rows, "fingerprint": text_fingerprint(dataset),
            "teachers": [t.identity() for t in teachers], "batch_size": args.batch_size, "shards": len(shards),
            **({"tags": taggers[0].tags} if taggers else {}), **({"vectors": True} if capture else {})}
    work = shards_dir(out)
    if distributed.is_main():
        prepare_work(work, plan)
    distributed.barrier()
    missing = [k for k in range(len(shards)) if not shard_path(work, k).exists()]
    distributed.barrier()  # every process saw the same missing shards before any writes one
    resumed = n_rows - sum(len(shards[k]) for k in missing)
    mine = missing[distributed.rank()::distributed.world_size()]
    bar = tqdm(total=sum(len(shards[k]) for k in mine), desc="label", unit="sent",
               disable=args.quiet or not distributed.is_main())
    started = time.time()
    for k in mine:
        logits, raw_tags, vectors = label_shard(teachers, encoded, shards[k], args.batch_size, capture)
        extras = tag_shard(taggers, dataset.select(shards[k])[TEXT], list(raw_tags.values())) if taggers else {}
        if capture:
            extras["vectors"] = vectors
        write_shard(shard_path(work, k), shards[k], logits, extras)
        bar.update(len(shards[k]))
    bar.close()
    distributed.barrier()
    seconds = time.time() - started
    if not distributed.is_main():
        return {}
    logits, tags, vectors = assemble(work, len(shards), n_rows, len(teachers[0].labels))
    outlier_meta = flatten_outliers(sources, logits, vectors) if has_outliers else None
    vectors = vectors if args.vectors else None
    labelled_now = n_rows - resumed
    meta = {**({"outliers": outlier_meta} if outlier_meta else {}),
            **({"version": transfer_set.LABEL_VERSION, "tags": len(taggers[0].tags),
                "taggers": [str(t.path) for t in taggers]} if taggers else {}),
            **({"vectors": int(vectors.shape[1])} if vectors is not None else {}),
            "teachers": [str(t.path) for t in teachers], "labels": len(teachers[0].labels), "rows": n_rows,
            "rows_labelled_this_run": labelled_now, "rows_resumed": resumed, "seconds": round(seconds, 2),
            "sentences_per_s": round(labelled_now / max(seconds, 1e-9), 1),
            "batch_size": args.batch_size, "max_length": [t.max_length for t in teachers],
            "processes": distributed.world_size(), "rows_labelled_by_main_process": sum(len(shards[k]) for k in mine),
            "threads": torch.get_num_threads(), "transfer": str(args.transfer),
            "agreement_with_gold": gold_agreement(dataset, logits, teachers[0].labels)}
    with atomic_output_dir(out, args.force) as tmp:
        with_logits(dataset, logits, tags, vectors).save_to_disk(str(tmp))
        transfer_set.write_labels(tmp, teachers[0].labels)
        if taggers:
            transfer_set.write_tags(tmp, taggers[0].tags)
        (tmp / transfer_set.LABEL_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        source_meta = Path(args.transfer) / transfer_set.META_FILE
        if source_meta.is_file():
            shutil.copyfile(source_meta, tmp / transfer_set.META_FILE)
    shutil.rmtree(work, ignore_errors=True)
    logger.info(f"label -> {out}: {n_rows} sentences x {len(teachers[0].labels)} logits from "
                f"{len(teachers)} teacher(s), {meta['sentences_per_s']:.0f} sentences/s"
                + (f" ({resumed} resumed from shards)" if resumed else ""))
    return meta


def flatten_outliers(sources: np.ndarray, logits: np.ndarray, vectors: np.ndarray) -> Dict:
    """Flat logits (in place) for the outlier rows (by each row's source) far from the training
    sentences; what was done."""
    from rasa_kd.transfer import outliers

    rows = np.flatnonzero(sources == transfer_set.OUTLIER)
    near, cut = outliers.near_originals(vectors[sources == "original"], vectors[rows])
    far = rows[~near]
    logits[far] = outliers.flattened(logits[far])
    logger.info(f"label: {len(far)} of {len(rows)} outlier sentences get flat targets ({int(near.sum())} are as close "
                f"to a training sentence as the training sentences are to each other: they keep the teacher's)")
    return {"rows": int(len(rows)), "flat": int(len(far)), "near_cosine": round(cut, 4)}


def gold_agreement(dataset, logits, labels: Sequence[str]):
    """Share of original sentences whose gold intent is the teacher's top label (None without gold)."""
    if "intent" not in dataset.column_names:
        return None
    intents = dataset["intent"]
    rows = [i for i, intent in enumerate(intents) if intent]
    if not rows:
        return None
    top = logits[rows].argmax(axis=1)
    return round(sum(labels[t] == intents[i] for t, i in zip(top, rows)) / len(rows), 4)
