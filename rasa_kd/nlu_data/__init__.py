"""Stage 0, the data: public datasets to Rasa NLU YAML (`convert`) and stratified splits (`split`)."""
