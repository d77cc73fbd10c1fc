"""Presets: named recipes for `rasa-kd pipeline`, `rasa-kd distil`, `make demo` and the benchmarks.

A preset is a named set of stage options: values for `DistilOptions` (the student),
the transfer-set size rule of `rasa-kd augment`, and the runtime `rasa-kd export`
deploys. `balanced` is the default and equals the options' own defaults; the others
list only what they change (`rasa-kd distil --help` and `describe()` print them).
Their trade-offs are measured in benchmarks/results/small_students.md.

Every preset prunes the vocabulary to the transfer set's wordpieces (balanced and
accurate also keep the teacher vocabulary's most common pieces, so that frequent words
the transfer set lacks are not spelt in pieces; fast keeps only the transfer set's, to
stay small), scales the transfer set with the training data (`transfer_size`), stops
distilling when dev accuracy has not improved for `patience` epochs, and deploys int8
ONNX when its dev accuracy is within `int8_max_drop` (or one dev example) of fp32 (else fp32 ONNX, said in
the export log and student.json).
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Union

from rasa_kd.errors import UserError
from rasa_kd.students.distil_options import DEFAULT_PRESET, DistilOptions, resolved

__all__ = ["DEFAULT_PRESET", "PRESET_NAMES", "PRESETS", "Preset", "distil_options", "transfer_size", "get_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    purpose: str
    distil: Dict[str, Any] = field(default_factory=dict)
    size_factor: int = 10
    min_size: int = 10_000
    max_size: int = 40_000
    int8_max_drop: float = 0.005

    def transfer_size(self, n_train: int) -> int:
        """New sentences to augment for `n_train` training sentences."""
        return transfer_size(n_train, self.size_factor, self.min_size, self.max_size)

    @property
    def summary(self) -> str:
        """The purpose and the BiLSTM recipe, from the values (e.g. "the default: 128-d multichannel
        wordpiece embeddings, 150-unit BiLSTM")."""
        options = resolved(distil_options(self.name))
        channels = {"non-static": "trained", "static": "frozen"}.get(options.embedding_mode, options.embedding_mode)
        return (f"{self.purpose}: {options.embedding_dim}-d {channels} wordpiece embeddings, "
                f"{options.hidden_size}-unit BiLSTM")


def transfer_size(n_train: int, factor: float, min_size: int, max_size: int) -> int:
    """The transfer-set size rule: factor x the training sentences, at least min_size, at most
    max_size (the cap wins). `Preset`'s field defaults are the default rule."""
    return int(min(max(factor * n_train, min_size), max_size))


PRESETS: Dict[str, Preset] = {
    "fast": Preset("fast", "smallest and fastest",
                   distil={"embedding_dim": 64, "embedding_mode": "non-static", "hidden_size": 96, "fc_size": 200,
                           "prune_keep_common": 0, "patience": 2}),
    "balanced": Preset("balanced", "the default"),
    "accurate": Preset("accurate", "more accurate, 3x the training time",
                       distil={"embedding_dim": 256, "hidden_size": 256}),
}


PRESET_NAMES = tuple(PRESETS)


def get_preset(preset: Union[str, Preset]) -> Preset:
    """The preset a name stands for: the one validation of a preset name, whose UserError the CLI
    prints as one line and the Rasa components raise as InvalidConfigException."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r} (choose from {', '.join(PRESET_NAMES)})")
    return PRESETS[preset]


def distil_options(preset: Union[str, Preset] = DEFAULT_PRESET, **values) -> DistilOptions:
    """`DistilOptions` of the preset, with `values` (e.g. transfer=, dev=, out=) laid over it.
    The presets' student values are BiLSTM recipes: with student="bert" only the options'
    own (small-BERT) defaults apply."""
    preset = get_preset(preset)
    recipe = preset.distil if values.get("student", DistilOptions.student) == "bilstm" else {}
    return dataclasses.replace(DistilOptions(), preset=preset.name, **{**recipe, **values})
