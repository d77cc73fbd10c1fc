"""Stage 2, the transfer set: new sentences from the training data (`augment`, `lm_augment`) and the
teacher's logits on them (`label`); the files are described in `rasa_kd.formats.transfer_set`."""
