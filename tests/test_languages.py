"""Assistants in languages written without spaces: a Thai toy assistant (`language: th`, which
Rasa's WhitespaceTokenizer refuses) trains inside `rasa train nlu` with AnyLanguageTokenizer
and a tiny multilingual teacher, and parses over HTTP; the rules augment Thai piece by piece."""
import json
import random
import re

import pytest

import rasa_runner
from rasa_kd.formats.nlu_yaml import Example, write_examples
from rasa_kd.formats.transfer_set import open_transfer

THAI_INTENTS = {"greet": ["สวัสดี", "สวัสดีครับ"], "set_alarm": ["ตั้งนาฬิกาปลุก", "นาฬิกาปลุก", "ปลุก"],
                "weather": ["อากาศ", "ฝนตก", "ฝน"], "remind": ["เตือน", "ตั้งเตือน"]}
THAI_FILLERS = ["", "ครับ", "วันนี้", "วันนี้ครับ"]
CONFIG = """recipe: default.v1
language: th
assistant_id: thai-test
pipeline:
  - name: rasa_kd.components.AnyLanguageTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    teacher: {teacher}
    preset: fast
    teacher_refit: never  # one teacher training per run (tests/test_pipeline.py tests the refit)
    transfer_size: 400
    epochs: 10
    seed: 1
policies: []
"""


def thai_examples(seed: int = 0):
    rng = random.Random(seed)
    examples = {(keyword + filler, intent) for intent, keywords in THAI_INTENTS.items()
                for keyword in keywords for filler in THAI_FILLERS}
    examples |= {(f"{rng.choice(THAI_FILLERS)}{keyword} {rng.choice(THAI_FILLERS[1:])}", intent)
                 for intent, keywords in THAI_INTENTS.items() for keyword in keywords}
    return [Example(text, intent) for text, intent in sorted(examples)]


def test_rules_cut_thai_into_the_teachers_pieces(tiny_use):
    from rasa_kd.teachers.folder import load_tokenizer
    from rasa_kd.transfer.augment import Segmenter, joined

    tokenizer = load_tokenizer(str(tiny_use["base"]))
    by_pieces, by_characters = Segmenter(tokenizer), Segmenter()
    pieces = [piece.replace("▁", "") for piece in tokenizer.tokenize("ตั้งนาฬิกาปลุก") if piece != "▁"]
    assert pieces[0] == "ตั้ง" and len(pieces) > 3  # the tiny vocabulary has its words only after a space
    assert by_pieces.units("ตั้งนาฬิกาปลุก hello") == [(pieces[0], False)] + [(p, True) for p in pieces[1:]] + [
        ("hello", False)]
    assert by_pieces.units("ตั้ง นาฬิกา") == [("ตั้ง", False), ("นาฬิกา", False)]
    assert by_characters.units("ฝนตก")[:2] == [("ฝ", False), ("น", True)]
    assert [unit for unit, _ in by_characters.units("ตั้ง")] == ["ตั้", "ง"]  # vowel and tone marks stay on
    for text in ("ตั้งนาฬิกาปลุก hello", "สวัสดีครับ อากาศวันนี้"):
        assert joined(by_pieces.units(text)) == text == joined(by_characters.units(text))


def test_rules_drop_words_instead_of_english_neighbours_for_other_languages(tiny_use, tmp_path, caplog):
    from rasa_kd.transfer.augment import AugmentOptions, augment

    train = tmp_path / "train.yml"
    write_examples(train, thai_examples())
    options = AugmentOptions(train=train, out=tmp_path / "transfer", size=200, seed=3, quiet=True,
                             segmenter=str(tiny_use["base"]), p_mask=0.2, p_pos=0.3)
    with caplog.at_level("INFO"):
        meta = augment(options)
    rules = meta["methods"]["rules"]
    assert rules["english"] is False and rules["stats"]["dropped"] > 0 and rules["stats"].get("replaced", 0) == 0
    assert sum("dropped instead" in r.getMessage() for r in caplog.records) == 1
    texts = list(open_transfer(tmp_path / "transfer").texts())
    assert any(re.search(r"[\u0e00-\u0e7f]\[MASK\]|\[MASK\][\u0e00-\u0e7f]", t) for t in texts)  # a piece masked


@pytest.fixture(scope="module")
def thai_assistant(tmp_path_factory, tiny_use):
    folder = tmp_path_factory.mktemp("thai-assistant")
    (folder / "config.yml").write_text(CONFIG.format(teacher=tiny_use["base"]))
    nlu = folder / "nlu.yml"
    write_examples(nlu, thai_examples())
    model = rasa_runner.train_nlu(folder / "config.yml", nlu, folder / "models", "thai", cwd=folder, log_level="INFO")
    return folder, model


def test_a_thai_assistant_trains_in_rasa_and_parses_over_http(thai_assistant, tmp_path):
    folder, model = thai_assistant
    log = (folder / "models" / "thai-train.log").read_text(errors="replace")
    assert "== distil: transfer=" in log and "Traceback" not in log
    with rasa_runner.RasaServer(model, tmp_path / "server.log") as server:
        parsed = server.parse("ตั้งนาฬิกาปลุกครับ")
    assert parsed["intent"]["name"] in THAI_INTENTS
    ranking = parsed["intent_ranking"]
    assert {entry["name"] for entry in ranking} == set(THAI_INTENTS)
    assert [e["confidence"] for e in ranking] == sorted((e["confidence"] for e in ranking), reverse=True)
    assert json.dumps(parsed, ensure_ascii=False)  # plain JSON types


def test_any_language_tokenizer_cuts_only_what_has_no_spaces():
    from rasa.shared.nlu.training_data.message import Message

    from rasa_kd.components import AnyLanguageTokenizer

    tokenizer = AnyLanguageTokenizer(AnyLanguageTokenizer.get_default_config())
    assert AnyLanguageTokenizer.not_supported_languages() is None
    text = "ตั้งนาฬิกา at 7, please! 今天"
    tokens = tokenizer.tokenize(Message(data={"text": text}), "text")
    assert [t.text for t in tokens] == ["ตั้", "ง", "น", "า", "ฬิ", "ก", "า", "at", "7", "please", "今", "天"]
    assert all(text[t.start:t.end] == t.text for t in tokens)
