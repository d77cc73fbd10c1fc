"""Students: models, losses, tokenizers, the package format and `rasa_kd.students.load`.

The toy helpers here (a tiny random BERT teacher, a separable toy task, a labelled
transfer set) are also imported by test_distil.py and test_export_evaluate.py.
"""
import json
import random
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from rasa_kd.errors import UserError

INTENTS = {
    "greet": ["hello", "hi", "hey", "morning"],
    "bye": ["bye", "goodbye", "later", "farewell"],
    "weather": ["rain", "sunny", "weather", "forecast"],
    "book": ["book", "reserve", "table", "ticket"],
}
FILLER = ["please", "the", "a", "now", "today", "i", "want", "you", "can", "me", "for", "my", "so"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LABELS = list(INTENTS)


def toy_sentence(rng: random.Random, intent: str) -> str:
    words = [rng.choice(INTENTS[intent])] + rng.sample(FILLER, rng.randint(1, 4))
    rng.shuffle(words)
    return " ".join(words) + rng.choice(["", "!", "?", "."])


def toy_examples(n: int, seed: int):
    from rasa_kd.formats.nlu_yaml import Example

    rng = random.Random(seed)
    return [Example(toy_sentence(rng, intent), intent) for intent in LABELS for _ in range(n)]


def rule_logits(text: str) -> list:
    """The toy teacher: 3 per keyword of an intent, minus 1, plus a little noise."""
    words = text.lower().replace("!", " ").replace("?", " ").replace(".", " ").split()
    noise = (zlib.crc32(text.encode()) % 7) / 20
    return [3.0 * sum(w in INTENTS[i] for w in words) - 1.0 + noise * (k - 1.5) for k, i in enumerate(LABELS)]


def write_tiny_teacher(folder: Path) -> Path:
    """A tiny random BERT sequence classifier with a fast tokenizer and labels.json."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w for ws in INTENTS.values() for w in ws} | set(FILLER) | {"!", "?", "."})
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + words + ["##s", "##ing"]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = BertConfig(vocab_size=len(SPECIALS) + len(words) + 2, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=len(LABELS))
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "labels.json").write_text(json.dumps(LABELS))
    return folder


def write_transfer(folder: Path, teacher: Path, n_per_intent: int = 40, n_augmented: int = 160,
                   labels=None) -> Path:
    """A labelled transfer set as `rasa-kd label` writes it (originals + unlabelled 'rules' rows)."""
    import datasets

    originals = toy_examples(n_per_intent, seed=1)
    rng = random.Random(2)
    augmented = [toy_sentence(rng, rng.choice(LABELS)) for _ in range(n_augmented)]
    texts = [e.text for e in originals] + augmented
    rows = {
        "text": texts,
        "source": ["original"] * len(originals) + ["rules"] * len(augmented),
        "parent": list(range(len(originals))) + [rng.randrange(len(originals)) for _ in augmented],
        "intent": [e.intent for e in originals] + [""] * len(augmented),
        "logits": [rule_logits(t) for t in texts],
    }
    features = datasets.Features({"text": datasets.Value("string"), "source": datasets.Value("string"),
                                  "parent": datasets.Value("int64"), "intent": datasets.Value("string"),
                                  "logits": datasets.Sequence(datasets.Value("float32"))})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(folder))
    (folder / "labels.json").write_text(json.dumps(labels or LABELS))
    (folder / "label.json").write_text(json.dumps({"teachers": [str(teacher)]}))
    return folder


def write_nlu(path: Path, examples) -> Path:
    from rasa_kd.formats.nlu_yaml import write_examples

    write_examples(path, examples)
    return path


def write_vectors(path: Path) -> Path:
    """A word2vec-style text file: keyword vectors point towards their intent's axis."""
    rng = np.random.default_rng(0)
    lines = []
    for k, intent in enumerate(LABELS):
        for word in INTENTS[intent]:
            vector = rng.normal(0, 0.1, 8)
            vector[k] += 1.0
            lines.append(word + " " + " ".join(f"{x:.4f}" for x in vector))
    for word in FILLER:
        lines.append(word + " " + " ".join(f"{x:.4f}" for x in rng.normal(0, 0.1, 8)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    """Paths of a tiny teacher, a labelled transfer set, dev/test NLU files and word vectors."""
    root = tmp_path_factory.mktemp("toy")
    teacher = write_tiny_teacher(root / "teacher")
    return {
        "root": root,
        "teacher": teacher,
        "transfer": write_transfer(root / "transfer", teacher),
        "dev": write_nlu(root / "dev.yml", toy_examples(8, seed=3)),
        "test": write_nlu(root / "test.yml", toy_examples(8, seed=4)),
        "vectors": write_vectors(root / "vectors.txt"),
    }


# ------------------------------------------------------------------ models and losses


def bilstm_config(**overrides):
    config = {"vocab_size": 20, "embedding_dim": 6, "mode": "multichannel", "hidden_size": 5, "pooling": "max",
              "fc_size": 7, "dropout": 0.0, "n_labels": 3, "unk_id": 1}
    config.update(overrides)
    return config


@pytest.mark.parametrize("pooling", ["max", "last"])
@pytest.mark.parametrize("mode", ["static", "non-static", "multichannel"])
def test_bilstm_padding_does_not_change_outputs(mode, pooling):
    import torch

    from rasa_kd.students.bilstm import BiLSTMStudent

    torch.manual_seed(0)
    model = BiLSTMStudent(bilstm_config(mode=mode, pooling=pooling), vectors=np.random.rand(20, 6)).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 1]])
    mask = (torch.arange(5) < torch.tensor([[3], [5]])).long()
    logits, sentence, tokens = model(ids, mask)
    alone = model(ids[:1, :3], mask[:1, :3])
    assert torch.allclose(logits[0], alone[0][0], atol=1e-6)
    assert torch.allclose(sentence[0], alone[1][0], atol=1e-6)
    assert torch.allclose(tokens[0, :3], alone[2][0], atol=1e-6)
    assert torch.all(tokens[0, 3:] == 0)
    assert sentence.shape == (2, 10) and tokens.shape == (2, 5, 10)


def test_static_channel_is_frozen_but_unk_vector_trains():
    import torch

    from rasa_kd.students.bilstm import BiLSTMStudent

    model = BiLSTMStudent(bilstm_config(mode="static"), vectors=np.random.rand(20, 6))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "static_embedding.weight" not in trainable and "unk_vector" in trainable
    before = model.static_embedding.weight.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ids, mask = torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.long)
    model(ids, mask)[0].sum().backward()
    unk = model.unk_vector.clone()
    optimizer.step()
    assert torch.equal(before, model.static_embedding.weight)
    assert not torch.equal(unk, model.unk_vector)


def small_bert_config(**overrides):
    config = {"vocab_size": 30, "teacher_embedding_dim": 16, "hidden_size": 12, "num_hidden_layers": 2,
              "num_attention_heads": 3, "intermediate_size": 20, "max_position_embeddings": 40,
              "dropout": 0.0, "projection": "linear", "n_labels": 3}
    config.update(overrides)
    return config


@pytest.mark.parametrize("projection", ["linear", "pca"])
def test_small_bert_projects_teacher_embeddings(projection):
    import torch

    from rasa_kd.students.small_bert import SmallBertStudent, pca_projection

    word = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    model = SmallBertStudent(small_bert_config(projection=projection)).eval()
    model.init_embeddings(word, position=np.random.rand(40, 16).astype(np.float32))
    mean, components = pca_projection(word, 12)
    ids = torch.tensor([[2, 5, 7]])
    if projection == "linear":
        projected = model.projection(model.word_embeddings(ids))
    else:
        projected = model.bert.embeddings.word_embeddings(ids)
    expected = (word[[2, 5, 7]] - mean) @ components
    assert np.allclose(projected[0].detach().numpy(), expected, atol=1e-4)
    logits, sentence, tokens = model(ids, torch.ones_like(ids))
    assert logits.shape == (1, 3) and sentence.shape == (1, 12) and tokens.shape == (1, 3, 12)


def test_small_bert_init_from_same_width_teacher_copies_layers():
    import torch
    from transformers import BertConfig, BertModel

    from rasa_kd.students.small_bert import SmallBertStudent

    teacher = BertModel(BertConfig(vocab_size=30, hidden_size=12, num_hidden_layers=4, num_attention_heads=3,
                                   intermediate_size=20, max_position_embeddings=40))
    student = SmallBertStudent(small_bert_config(teacher_embedding_dim=12))
    assert student.widths_match(teacher.config)
    student.init_from_teacher(teacher)
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.encoder.layer[0].output.dense.weight)
    assert torch.equal(student.bert.encoder.layer[1].output.dense.weight, teacher.encoder.layer[3].output.dense.weight)
    assert torch.equal(student.word_embeddings.weight, teacher.embeddings.word_embeddings.weight)


@pytest.mark.parametrize("kind,hard_weight", [("mse", 0.0), ("ce", 0.0), ("mse", 0.5), ("ce", 0.5)])
def test_each_loss_decreases_on_toy_transfer_set(kind, hard_weight):
    import torch

    from rasa_kd.students.bilstm import BiLSTMStudent
    from rasa_kd.students.losses import distillation_loss, soft_loss
    from rasa_kd.students.tokenizers import PAD, UNK, WordTokenizer

    examples = toy_examples(10, seed=5)
    words = [PAD, UNK] + sorted({w for ws in INTENTS.values() for w in ws} | set(FILLER) | {"!", "?", "."})
    tokenizer = WordTokenizer(words)
    batch = tokenizer([e.text for e in examples])
    ids, mask = torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])
    teacher = torch.tensor([rule_logits(e.text) for e in examples])
    gold = torch.tensor([LABELS.index(e.intent) if i % 2 else -1 for i, e in enumerate(examples)])
    torch.manual_seed(0)
    model = BiLSTMStudent(bilstm_config(vocab_size=len(words), mode="non-static", hidden_size=16, fc_size=16,
                                        n_labels=4), vectors=np.random.rand(len(words), 6))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        loss = distillation_loss(model(ids, mask)[0], teacher, gold, kind, temperature=2.0, hard_weight=hard_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    floor = (1 - hard_weight) * soft_loss(teacher, teacher, kind, 2.0).item()  # soft CE: the teacher's entropy
    assert losses[-1] - floor < 0.5 * (losses[0] - floor)


def test_hidden_state_loss_ignores_padding_and_decreases():
    import torch
    from transformers import BertConfig, BertModel

    from rasa_kd.students.losses import hidden_state_loss
    from rasa_kd.students.small_bert import SmallBertStudent
    from rasa_kd.students.training import HiddenStateDistillation

    tokens = torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    changed_padding = tokens.clone()
    changed_padding[0, 2] += 5.0
    assert hidden_state_loss(tokens, changed_padding, mask).item() == 0.0
    assert hidden_state_loss(tokens, tokens + 1.0, mask).item() == pytest.approx(1.0)

    torch.manual_seed(0)
    teacher = BertModel(BertConfig(vocab_size=30, hidden_size=12, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, max_position_embeddings=16))
    student = SmallBertStudent({"vocab_size": 30, "teacher_embedding_dim": 12, "hidden_size": 8,
                                "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
                                "max_position_embeddings": 16, "dropout": 0.0, "projection": "linear",
                                "n_labels": 3})
    wrapper = HiddenStateDistillation(student, teacher).train()
    ids, mask = torch.randint(1, 30, (6, 5)), torch.ones(6, 5, dtype=torch.long)
    trainable = [p for p in wrapper.parameters() if p.requires_grad]
    assert all(not p.requires_grad for p in teacher.parameters()) and trainable
    optimizer = torch.optim.Adam(trainable, lr=0.01)
    losses = []
    for _ in range(40):
        loss = wrapper(ids, mask)[3]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert wrapper.eval()(ids, mask)[3] is None  # no teacher pass outside training


def test_soft_cross_entropy_scaled_by_t_squared():
    import torch

    from rasa_kd.students.losses import soft_loss

    student, teacher = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    at_t = soft_loss(student, teacher, "ce", 4.0)
    expected = -(torch.softmax(teacher / 4, -1) * torch.log_softmax(student / 4, -1)).sum() * 16
    assert torch.isclose(at_t, expected)


# ------------------------------------------------------------------ tokenizers


def test_word_tokenizer_offsets_are_character_spans():
    from rasa_kd.students.tokenizers import PAD, UNK, WordTokenizer

    tokenizer = WordTokenizer([PAD, UNK, "hello", "world", "!"], max_length=10)
    text = "Hello,  WORLD! zzz"
    batch = tokenizer([text, ""])
    offsets = batch["offsets"][0]
    assert [text[s:e] for s, e in offsets] == ["Hello", ",", "WORLD", "!", "zzz"]
    assert batch["input_ids"][0].tolist() == [2, 1, 3, 4, 1]
    assert batch["attention_mask"][1].tolist() == [1, 0, 0, 0, 0]  # empty text: one [UNK]


def test_wordpiece_tokenizer_round_trip(tmp_path, toy_world):
    from transformers import AutoTokenizer

    from rasa_kd.students.tokenizers import WordpieceTokenizer

    hf = AutoTokenizer.from_pretrained(str(toy_world["teacher"]))
    tokenizer = WordpieceTokenizer.from_pretrained(hf, max_length=6, special_tokens=True)
    tokenizer.save(tmp_path)
    again = WordpieceTokenizer.load(tmp_path, max_length=6, special_tokens=True)
    text = "Hello rains today please now you me"
    batch = again([text])
    assert batch["input_ids"].shape == (1, 6)  # truncated to max_length with [CLS] ... [SEP]
    assert batch["input_ids"][0].tolist() == hf(text, truncation=True, max_length=6)["input_ids"]
    assert [text[s:e] for s, e in batch["offsets"][0] if e > s] == ["Hello", "rain", "s", "today"]


# ------------------------------------------------------------------ package and load


@pytest.fixture(scope="session")
def word_package(tmp_path_factory, toy_world):
    """A (briefly trained) word BiLSTM package written by `rasa-kd distil`."""
    from rasa_kd.students import distil

    out = tmp_path_factory.mktemp("pkg") / "student"
    distil.distil(distil.parse([
        "--transfer", toy_world["transfer"], "--dev", toy_world["dev"], "--test", toy_world["test"], "--out", out,
        "--vocab", "words", "--vectors", toy_world["vectors"], "--hidden-size", "16", "--fc-size", "16",
        "--epochs", "6", "--batch-size", "16", "--learning-rate", "0.01", "--embedding-mode", "non-static"]))
    return out


def test_package_contents_and_manifest(word_package):
    manifest = json.loads((word_package / "student.json").read_text())
    assert manifest["format"] == "rasa-kd-student" and manifest["format_version"] == 1
    assert manifest["architecture"] == "bilstm" and manifest["labels"] == LABELS
    assert manifest["tokenizer"]["kind"] == "words"
    assert {"dev", "test"} <= set(manifest["metrics"]) and manifest["recipe"]["loss"] == "mse"
    assert manifest["parameters"]["total"] == manifest["parameters"]["embedding"] + manifest["parameters"]["other"]
    lines = (word_package / "vocab.txt").read_text().splitlines()
    assert lines[:2] == ["[PAD]", "[UNK]"] and "hello" in lines
    assert not any(p.suffix in (".bin", ".pt", ".pkl", ".pth") for p in word_package.iterdir())


def test_load_predict_encode(word_package):
    from rasa_kd.students import load

    student = load(word_package)
    texts = ["hello there", "goodbye my friend", "will it rain today", "book a table", ""]
    probabilities = student.predict(texts)
    assert probabilities.shape == (5, 4) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert [student.labels[i] for i in probabilities[:4].argmax(axis=1)] == LABELS
    assert student.encode(texts).shape == (5, 32)
    vectors, offsets = student.encode_tokens("  Hello, rain!")
    assert vectors.shape == (4, 32)
    assert offsets == [(2, 7), (7, 8), (9, 13), (13, 14)]
    assert student.encode_tokens("")[0].shape == (0, 32)


def test_analyse_gives_predict_encode_and_encode_tokens_in_one_pass(word_package):
    from rasa_kd.students import load

    student = load(word_package)
    texts = ["  Hello, rain!", "book a table for my friend please now", ""]  # padded in one batch
    analyses = student.analyse(texts)
    assert len(analyses) == 3
    for text, (probabilities, sentence, vectors, offsets, entities, judged), expected_probabilities, expected_sentence \
            in zip(texts, analyses, student.predict(texts), student.encode(texts)):
        assert entities == [] and judged is None  # a student without entity tags or fallback
        expected_vectors, expected_offsets = student.encode_tokens(text)
        assert np.allclose(probabilities, expected_probabilities, atol=1e-5)
        assert np.allclose(sentence, expected_sentence, atol=1e-5)
        assert offsets == expected_offsets and np.allclose(vectors, expected_vectors, atol=1e-5)


def test_save_load_identical_predictions(word_package, tmp_path):
    from rasa_kd.students import load

    copy = tmp_path / "copy"
    shutil.copytree(word_package, copy)
    texts = [e.text for e in toy_examples(3, seed=9)]
    assert np.array_equal(load(word_package).predict(texts), load(copy).predict(texts))


def corrupt(package: Path, tmp_path: Path, change) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    change(broken)
    return broken


@pytest.mark.parametrize("change,message", [
    (lambda p: (p / "student.json").unlink(), "not a rasa-kd student package"),
    (lambda p: (p / "student.json").write_text("{not json"), "corrupt student manifest"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\x00garbage"), "corrupt weights"),
    (lambda p: (p / "model.safetensors").unlink(), r"model.safetensors: not found \(use the complete package"),
    (lambda p: (p / "vocab.txt").write_text("a\nb\n"), "not a rasa-kd word vocabulary"),
    (lambda p: (p / "student.json").write_text(json.dumps({
        **json.loads((p / "student.json").read_text()), "format_version": 3})), "newer than this rasa-kd reads"),
    (lambda p: (p / "student.json").write_text(json.dumps({
        **json.loads((p / "student.json").read_text()), "labels": LABELS[:3]})), "names 3 labels but the model has 4 outputs"),
    (lambda p: (p / "student.json").write_text(json.dumps({
        **json.loads((p / "student.json").read_text()), "config": {
            **json.loads((p / "student.json").read_text())["config"], "hidden_size": 9}})), "weights do not match"),
])
def test_bad_package_gives_one_clear_line(word_package, tmp_path, change, message):
    from rasa_kd.students import load

    broken = corrupt(word_package, tmp_path, change)
    with pytest.raises(UserError, match=message) as error:
        load(broken)
    assert "\n" not in str(error.value)


def test_missing_package_folder(tmp_path):
    from rasa_kd.students import load

    with pytest.raises(UserError, match="student package not found"):
        load(tmp_path / "nowhere")
