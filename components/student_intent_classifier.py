"""StudentIntentClassifier: a distilled rasa-kd student as Rasa's intent classifier.

```yaml
pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    # no `student:`: `rasa train` distils a student from the NLU data (teacher, augment,
    # label, distil, export; see components/student_training.py) with these keys:
    teacher: null              # null: chosen by the data (minilm for English, usem for other scripts); minilm, usem,
                               # mpnet (after `make mpnet`), a local teacher/checkpoint folder or a hub id; a list: an ensemble
    language: null             # null: Rasa's `language:` key; with the data's script and words it picks the teacher
    preset: balanced           # fast | balanced | accurate (rasa_kd/students/presets.py)
    transfer_size: null        # new transfer sentences (default: the preset's rule)
    epochs: null               # most distillation epochs (default: the preset's)
    seed: 42
    # or a package made by `rasa-kd distil` / `rasa-kd pipeline`:
    # student: build/student
    ranking_length: 10         # intents in `intent_ranking` (0 = all)
    runtime: auto              # auto | int8 | onnx | pytorch
    token_features: false      # true: also hand the student's token vectors to later components
    entities: true             # data with entities: the one student extracts them too (false: intents only)
    unknown_score: max-probability+nearest  # how unlike the known intents a message is lowers its confidence, so
                               # FallbackClassifier catches it; off: the plain calibrated probabilities
    outliers: auto             # generic sentences the student learns to be unsure about (English data); none; a file
  - name: FallbackClassifier   # threshold: the one `rasa train` logs for the student (rasa-kd fallback)
```

`entities: true` (the default, as in `rasa-kd pipeline`; data without entities is distilled
as before) distils intents and entities into one student (a joint teacher with a tag head, a
student with a token head) and makes the component
Rasa's entity extractor too, as DIET's `entity_recognition` does: from the same forward pass
that gives the intent, each message gets the student's entities (`extractor`
StudentIntentClassifier, `confidence_entity`, spans widened to whole Rasa tokens), so
`EntitySynonymMapper` and `rasa test nlu`'s entity report work as with any extractor. Nothing
is trained at load time. A `student:` package made with entities extracts them whatever the key.
`entities: false` (`rasa-kd pipeline --no-entities`) distils intents only, e.g. to leave the
entities to another extractor (training warns when one meets the student's).

`token_features: true` makes the component a featurizer as well: from the same forward
pass it adds the student's sentence vector and one row per Rasa token (as
`StudentFeaturizer` does) to every message, training examples included, so that an
entity extractor after it (`CRFEntityExtractor` with `text_dense_features`, DIET)
uses the student's contextual token vectors: one distillation, inside `rasa train`,
for intents and entities (docs/components.md, Intents and entities).

`unknown_score` (rasa_kd/students/fallback.py, benchmarks/results/unknown_intents.md): the
distilled package carries an unknown-intent score fitted on the training sentences and the dev
share, and a map from it to the probability that the top intent is right (fitted on the dev
share). Every intent's confidence is scaled by one factor per message so that the top one is
that probability: the top intent and the ranking order stay, and a message unlike every intent
drops under the FallbackClassifier threshold. The training log names the threshold expected to
cost at most 1 % of known-intent accuracy (fitted on the dev share). A `student:` package made
without the fallback stage keeps its plain probabilities. `outliers` (rasa_kd/transfer/outliers.py):
generic sentences from other domains in the transfer set, trained toward a flat distribution
(outlier exposure).

`runtime`: `auto` (default) runs what `rasa-kd export` recorded in student.json
(int8 when it held accuracy), else model.onnx when exported, else PyTorch; `int8`
runs model.int8.onnx, `onnx` model.onnx, `pytorch` model.safetensors. Only that
runtime's files are stored in the trained model. Deprecated: `onnx: true`, which
means `runtime: onnx` when `runtime` is `auto`.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import ENTITY_ATTRIBUTE_CONFIDENCE_TYPE, TOKENS_NAMES
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (ACTION_TEXT, ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START,
                                       ENTITY_ATTRIBUTE_TYPE, ENTITY_ATTRIBUTE_VALUE, INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY,
                                       PREDICTED_CONFIDENCE_KEY, TEXT)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from rasa_kd.components import student_storage, student_training
from rasa_kd.components.student_featurizer import featurize, featurize_training_data
from rasa_kd.students.unknown import UNKNOWN_SCORE_OFF, scaled_to_top

NAME = "StudentIntentClassifier"


# Also a featurizer, so that Rasa hands later components the training data this one featurized
# (`process_training_data`); without `token_features` that step passes the data through.
@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
                           DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
                           DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True)
class StudentIntentClassifier(GraphComponent, IntentClassifier, EntityExtractorMixin):
    """Predicts intents with a rasa-kd student package; the package travels inside the model."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**student_storage.DEFAULT_CONFIG, **student_training.TRAINING_CONFIG, "ranking_length": 10,
                "token_features": False}

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """The package's runtime files, or (distilling in `rasa train`) the teacher and the
        preset's recipe; Rasa adds the config and the training data itself."""
        if config.get("student"):
            return student_storage.package_fingerprint(config)
        return student_training.training_fingerprint(config)

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 student: Any = None, node_name: Text = NAME) -> None:
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self.student = student
        self.node_name = node_name  # the origin of the features it adds

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "StudentIntentClassifier":
        config = student_training.with_rasa_language(config, execution_context)
        student_training.warn_other_extractors(config, execution_context, NAME)
        return cls(config, model_storage, resource, node_name=execution_context.node_name)

    def train(self, training_data: TrainingData) -> Resource:
        """Distil a student from the training data (no `student:`), or check that the configured
        package knows exactly the data's intents; then store its runtime's files in the model."""
        student_training.check_config(self.component_config, NAME)
        if not self.component_config.get("student"):
            self.student = student_training.distil_training_data(training_data, self.component_config, NAME,
                                                                 self._store)
            return self._resource
        self.student = self._store(student_storage.configured_package(self.component_config, NAME),
                                   training_data)
        return self._resource

    def _store(self, package: Path, training_data: Optional[TrainingData] = None) -> Any:
        student = student_storage.load_configured_student({**self.component_config, "student": str(package)}, NAME)
        if training_data is not None:
            self._check_intents(student.labels, training_data.intents)
            student_training.warn_if_leaky(package, training_data, NAME)
        student_storage.store_student(student, self._model_storage, self._resource)
        return student

    @staticmethod
    def _check_intents(student_labels: List[str], data_intents) -> None:
        missing = sorted(set(data_intents) - set(student_labels))
        extra = sorted(set(student_labels) - set(data_intents))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"intents in the NLU data that the student lacks: {', '.join(missing)}")
            if extra:
                parts.append(f"student intents not in the NLU data: {', '.join(extra)}")
            raise InvalidConfigException(
                f"{NAME}: the student's labels do not match the training data ({'; '.join(parts)}); "
                f"distil a student on this NLU data"
            )

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "StudentIntentClassifier":
        student = student_storage.load_stored_student(model_storage, resource, NAME)
        return cls(config, model_storage, resource, student, execution_context.node_name)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """With `token_features`, add the student's features to the training examples."""
        if self.component_config.get("token_features") and self.student is not None:
            featurize_training_data(self.student, training_data, self.node_name)
        return training_data

    def _analyse(self, messages: List[Message]) -> List[Any]:
        """One forward pass per message text: its analysis (intent probabilities, entities), in
        message order. With `token_features`, the features of the text and action text of the
        messages that have them are added from that pass (as StudentFeaturizer adds them)."""
        if not self.component_config.get("token_features"):
            return self.student.analyse([message.get(TEXT) or "" for message in messages])
        with_text = [m for m in messages if m.get(TEXT)]
        by_message = dict(zip(map(id, with_text), featurize(self.student, with_text, TEXT, self.node_name)
                              if with_text else []))
        with_action_text = [m for m in messages if m.get(ACTION_TEXT)]
        if with_action_text:
            featurize(self.student, with_action_text, ACTION_TEXT, self.node_name)
        without_text = [m for m in messages if id(m) not in by_message]
        if without_text:
            by_message.update(zip(map(id, without_text), self.student.analyse([""] * len(without_text))))
        return [by_message[id(m)] for m in messages]

    def process(self, messages: List[Message]) -> List[Message]:
        """Set `intent` and a sorted `intent_ranking` on each message (and, with
        `token_features`, add the student's features from the same forward pass; for a student
        with entity tags, its entities)."""
        if self.student is None or not messages:
            return messages
        analyses = self._analyse(messages)
        for message, analysis in zip(messages, analyses):
            if self.student.tags and message.get(TEXT):
                self._set_entities(message, analysis.entities)
        for message, row in zip(messages, map(self._confidences, analyses)):
            ranking = sorted(
                ({INTENT_NAME_KEY: label, PREDICTED_CONFIDENCE_KEY: float(p)}
                 for label, p in zip(self.student.labels, row)),
                key=lambda item: item[PREDICTED_CONFIDENCE_KEY],
                reverse=True,
            )
            length = self.component_config["ranking_length"]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking[:length] if length else ranking, add_to_output=True)
        return messages

    def _confidences(self, analysis) -> Any:
        """The intent confidences Rasa sees: the calibrated probabilities or, when the student has a
        fallback (and `unknown_score` is not off), those scaled so that the top one is the
        fallback's confidence (the ranking order stays)."""
        if analysis.fallback_confidence is None or self.component_config.get("unknown_score") == UNKNOWN_SCORE_OFF:
            return analysis.probabilities
        return scaled_to_top(analysis.probabilities[None, :], [analysis.fallback_confidence])[0]

    def _set_entities(self, message: Message, found: List[Dict[str, Any]]) -> None:
        """The student's entities, widened to whole Rasa tokens, added to the message's."""
        text = message.get(TEXT) or ""
        tokens = message.get(TOKENS_NAMES[TEXT]) or []
        entities: List[Dict[str, Any]] = []
        for entity in found:
            start, end = token_aligned(entity["start"], entity["end"], tokens)
            if entities and start < entities[-1][ENTITY_ATTRIBUTE_END]:  # two inside one Rasa token: one entity
                if entity["confidence"] <= entities[-1][ENTITY_ATTRIBUTE_CONFIDENCE_TYPE]:
                    continue
                entities.pop()
            entities.append({ENTITY_ATTRIBUTE_START: start, ENTITY_ATTRIBUTE_END: end,
                             ENTITY_ATTRIBUTE_VALUE: text[start:end], ENTITY_ATTRIBUTE_TYPE: entity["entity"],
                             ENTITY_ATTRIBUTE_CONFIDENCE_TYPE: float(entity["confidence"])})
        message.set(ENTITIES, message.get(ENTITIES, []) + self.add_extractor_name(entities), add_to_output=True)


def token_aligned(start: int, end: int, tokens) -> tuple:
    """(start, end) widened to the Rasa tokens it overlaps (unchanged where it overlaps none)."""
    overlapping = [token for token in tokens if token.start < end and token.end > start]
    if not overlapping:
        return start, end
    return min(start, overlapping[0].start), max(end, overlapping[-1].end)
