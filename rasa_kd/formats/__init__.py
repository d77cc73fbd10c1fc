"""The files the stages talk through: Rasa NLU YAML (`nlu_yaml`), the Arrow transfer set
(`transfer_set`), the student package (`student_package`) and atomic outputs (`outputs`)."""
