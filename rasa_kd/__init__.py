"""rasa-kd: distil BERT-quality sentence classifiers into small students for Rasa NLU.

The path, one package per step (each stage module has one entry point, named in `commands`):
  nlu_data/    Rasa NLU YAML in: public datasets converted, stratified splits
  teachers/    the offline models, fine-tuning, the teacher folder
  transfer/    the transfer set: augmentation, the teacher's logits
  students/    the BiLSTM and small-BERT students: distil, export, `load`
  evaluation/  scores, speed, error analysis, calibration
  formats/     the files the steps talk through
  pipeline     every step in one call; `cli` and `commands` the command line
The Rasa components (the top-level `components/` folder) are installed as `rasa_kd.components`.
"""
__version__ = "0.1.0"
