"""Measuring models: scores and speed (`evaluate`), errors and thin intents (`analyse`), confidence
calibration (`calibration`) and the metric definitions (`metrics`)."""
