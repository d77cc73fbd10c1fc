"""AnyLanguageTokenizer: Rasa's WhitespaceTokenizer for every language, Thai, Chinese and Japanese included.

```yaml
language: th
pipeline:
  - name: rasa_kd.components.AnyLanguageTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
```

Rasa's `WhitespaceTokenizer` refuses `language: th`, `zh` and `ja`, whose text puts no
space between words. This one splits as it does (same config keys, same handling of
punctuation and emoji), then cuts each word with characters of a script written without
spaces (Thai, Lao, Khmer, Myanmar, Chinese, Japanese) into one token per character with
its combining marks. (Rasa's own tokenizer also drops a Chinese or Japanese word whole: its
emoji pattern spans most of the CJK blocks.) The student classifies the whole message whatever the tokens are;
the tokens matter to the components that read them: `token_features: true` gives one
student vector per such token, and an entity extractor then tags characters. Where a
tokenizer made for the language is installed (`JiebaTokenizer` for Chinese, `SpacyTokenizer`
with a Thai or Japanese model), it can take this one's place.
"""
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

from rasa_kd.nlu_data.scripts import character_spans, needs_cutting


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class AnyLanguageTokenizer(WhitespaceTokenizer):
    """Whitespace tokens, and one token per character in scripts written without spaces."""

    @staticmethod
    def not_supported_languages() -> Optional[List[Text]]:
        return None

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "AnyLanguageTokenizer":
        return cls(config)

    def remove_emoji(self, text: Text) -> Text:
        """Rasa's emoji pattern spans most of the CJK blocks: a Chinese or Japanese word would vanish."""
        return text if needs_cutting(text) else super().remove_emoji(text)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens: List[Token] = []
        for token in super().tokenize(message, attribute):
            if not needs_cutting(token.text):
                tokens.append(token)
                continue
            tokens += [Token(token.text[start:end], token.start + start) for start, end in character_spans(token.text)]
        return tokens
