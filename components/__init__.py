"""rasa-kd's Rasa components, installed as `rasa_kd.components`.

Name them in any assistant's config.yml after `pip install rasa-kd`:
`rasa_kd.components.StudentIntentClassifier`, `rasa_kd.components.StudentFeaturizer`,
`rasa_kd.components.AnyLanguageTokenizer`.
"""
from rasa_kd.components.any_language_tokenizer import AnyLanguageTokenizer
from rasa_kd.components.student_featurizer import StudentFeaturizer
from rasa_kd.components.student_intent_classifier import StudentIntentClassifier

__all__ = ["AnyLanguageTokenizer", "StudentFeaturizer", "StudentIntentClassifier"]
