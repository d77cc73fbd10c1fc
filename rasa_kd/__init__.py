"""rasa-kd: distil BERT-quality sentence classifiers into small students for Rasa NLU."""
__version__ = "0.1.0"
