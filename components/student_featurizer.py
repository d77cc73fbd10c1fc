"""StudentFeaturizer: dense features from a rasa-kd student's encoder, for DIET and friends.

Like Rasa's `LanguageModelFeaturizer`, at BiLSTM cost. Sentence features are the
student's sentence vector; sequence features have exactly one row per Rasa token:
the mean of the student's token vectors (word pieces or words) whose character
span overlaps the Rasa token (zeros where none does, e.g. text beyond the
student's maximum length).

```yaml
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentFeaturizer
    student: build/student
    runtime: auto          # auto | int8 | onnx | pytorch, as for StudentIntentClassifier
  - name: DIETClassifier
    epochs: 100
```

`runtime: auto` (default) runs what `rasa-kd export` recorded in student.json, else
model.onnx when exported, else PyTorch; only that runtime's files are stored in the
trained model. Deprecated: `onnx: true`, which means `runtime: onnx` when `runtime`
is `auto`.
"""
from typing import Any, Dict, List, Optional, Text, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import ACTION_TEXT, FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, RESPONSE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_kd.components import student_storage

NAME = "StudentFeaturizer"
FEATURIZED_ATTRIBUTES = (TEXT, RESPONSE, ACTION_TEXT)
BATCH_SIZE = 64


def pool_onto_tokens(vectors: np.ndarray, offsets, tokens) -> np.ndarray:
    """One row per Rasa token: the mean of the overlapping student token vectors."""
    rows = np.zeros((len(tokens), vectors.shape[1]), dtype=np.float32)
    for row, token in enumerate(tokens):
        overlapping = [i for i, (start, end) in enumerate(offsets)
                       if start < token.end and end > token.start and end > start]
        if overlapping:
            rows[row] = vectors[overlapping].mean(axis=0)
    return rows


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class StudentFeaturizer(DenseFeaturizer, GraphComponent):
    """Sentence and per-token features from a rasa-kd student package."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**DenseFeaturizer.get_default_config(), **student_storage.DEFAULT_CONFIG}

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        pass

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        return student_storage.package_fingerprint(config)

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext, student: Any = None) -> None:
        super().__init__(execution_context.node_name, config)
        self._model_storage = model_storage
        self._resource = resource
        self.student = student

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "StudentFeaturizer":
        return cls(config, model_storage, resource, execution_context)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "StudentFeaturizer":
        student = student_storage.load_stored_student(model_storage, resource, NAME)
        return cls(config, model_storage, resource, execution_context, student)

    def train(self, training_data: TrainingData) -> Resource:
        """Store the student's runtime files in the model, so the trained model is self-contained."""
        self.student = student_storage.load_configured_student(self._config, NAME)
        student_storage.store_student(self.student, self._model_storage, self._resource)
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        if self.student is not None:
            featurize_training_data(self.student, training_data, self._identifier)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for attribute in (TEXT, ACTION_TEXT):
            self._featurize([m for m in messages if m.get(attribute)], attribute)
        return messages

    def _featurize(self, messages: List[Message], attribute: Text) -> None:
        if messages and self.student is not None:
            featurize(self.student, messages, attribute, self._identifier)


def featurize_training_data(student: Any, training_data: TrainingData, origin: Text) -> None:
    """`featurize` every training example's text, response and action text, BATCH_SIZE at a time."""
    for attribute in FEATURIZED_ATTRIBUTES:
        messages = [m for m in training_data.training_examples if m.get(attribute)]
        for start in range(0, len(messages), BATCH_SIZE):
            featurize(student, messages[start:start + BATCH_SIZE], attribute, origin)


def featurize(student: Any, messages: List[Message], attribute: Text, origin: Text) -> List[Any]:
    """Add the student's sentence and per-Rasa-token features of `attribute` to `messages`
    (from one forward pass) and return each message's analysis from that pass
    (`rasa_kd.students.runtime.Analysis`: intent probabilities, entities, ...)."""
    analyses = student.analyse([message.get(attribute) or "" for message in messages])
    for message, analysis in zip(messages, analyses):
        sequence = pool_onto_tokens(np.asarray(analysis.tokens, dtype=np.float32), analysis.offsets,
                                    message.get(TOKENS_NAMES[attribute]) or [])
        for kind, matrix in ((FEATURE_TYPE_SEQUENCE, sequence),
                             (FEATURE_TYPE_SENTENCE, np.asarray(analysis.sentence, dtype=np.float32)[None, :])):
            message.add_features(Features(matrix, kind, attribute, origin))
    return analyses
