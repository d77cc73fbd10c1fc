"""Writing systems: which text is written without spaces between words, and its characters.

Thai, Lao, Khmer, Myanmar, Chinese and Japanese put no space between words. What needs
word-like units there (the augmentation rules, Rasa tokens) cuts such a run into pieces
(a teacher's SentencePiece pieces where one is at hand) or into its characters, each with
the combining marks that follow it (Thai vowels and tones are marks on a consonant)."""
import unicodedata
from collections import Counter
from typing import List, Optional, Set, Tuple

# the first word of the Unicode names of their characters
NO_SPACE_SCRIPTS = ("THAI", "LAO", "KHMER", "MYANMAR", "CJK", "HIRAGANA", "KATAKANA")
Span = Tuple[int, int]


def written_without_spaces(char: str) -> bool:
    return unicodedata.name(char, "").startswith(NO_SPACE_SCRIPTS)


def needs_cutting(word: str) -> bool:
    return any(written_without_spaces(char) for char in word)


def character_spans(word: str) -> List[Span]:
    """(start, end) of each character of `word` with its combining marks."""
    starts = [i for i, char in enumerate(word) if i == 0 or not unicodedata.category(char).startswith("M")]
    return list(zip(starts, starts[1:] + [len(word)]))


def letter_script(char: str) -> Optional[str]:
    """The writing system of a letter, as the first word of its Unicode name (LATIN, THAI,
    CJK, ARABIC, HANGUL ...); None for digits, marks, punctuation and symbols."""
    if not unicodedata.category(char).startswith("L"):
        return None
    return unicodedata.name(char, "UNNAMED").split(" ")[0]


def scripts_of(text: str) -> Set[str]:
    return {script for script in map(letter_script, text) if script}


def main_scripts(letters: Counter, share: float) -> Set[str]:
    """The scripts with at least `share` of all the letters counted (script -> letters)."""
    total = sum(letters.values())
    return {script for script, n in letters.items() if n >= share * total}
