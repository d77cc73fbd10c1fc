"""Presets: named recipes for `rasa-kd pipeline`, `rasa-kd distil`, `make demo` and the benchmarks.

A preset is a named set of stage options: values for `DistilOptions` (the student),
the transfer-set size rule of `rasa-kd augment`, and the runtime `rasa-kd export`
deploys. `balanced` is the default and equals the options' own defaults; the others
list only what they change. Their trade-offs are measured in
benchmarks/results/small_students.md on Sara, TREC, MTOD-es and rasa-demo (dev scores
compared, test reported); `accurate` beats `balanced` on dev on rasa-demo only (0.984x
vs 0.979x of the teacher) and trails it on Sara, TREC and MTOD-es (0.994x vs 1.000x,
0.973x vs 0.975x, 1.003x vs 1.004x) at twice the size, so `balanced` is the default.

  fast      ~0.7-1.6 MB int8: 64-d trained wordpiece embeddings, 96-unit BiLSTM
  balanced  ~4.5-5.6 MB int8: 128-d multichannel wordpiece embeddings, 150-unit BiLSTM
  accurate  ~2x balanced: 256-d multichannel wordpiece embeddings, 256-unit BiLSTM

Every preset prunes the vocabulary to the transfer set's wordpieces (balanced and
accurate also keep the teacher vocabulary's 10,000 most common pieces: on the four
datasets 15-32 % of test sentences hold a word the transfer set lacks, and those lose
most accuracy when spelt in pieces; fast keeps only the transfer set's, to stay under
1 MB), scales the transfer set with the training data (size = clamp(size_factor x
training sentences, min_size, max_size)), stops distilling when dev accuracy has not
improved for `patience` epochs (3; fast 2), and deploys int8 ONNX when its dev
accuracy is within `int8_max_drop` of fp32 (else fp32 ONNX, said in the export log
and student.json).
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict

PRESET_NAMES = ("fast", "balanced", "accurate")
DEFAULT_PRESET = "balanced"


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    distil: Dict[str, Any] = field(default_factory=dict)
    size_factor: int = 10
    min_size: int = 10_000
    max_size: int = 40_000
    int8_max_drop: float = 0.005

    def transfer_size(self, n_train: int) -> int:
        """New sentences to augment for `n_train` training sentences."""
        return int(min(max(self.size_factor * n_train, self.min_size), self.max_size))


PRESETS: Dict[str, Preset] = {
    "fast": Preset("fast", "smallest and fastest: 64-d trained wordpiece embeddings, 96-unit BiLSTM",
                   distil={"embedding_dim": 64, "embedding_mode": "non-static", "hidden_size": 96, "fc_size": 200,
                           "prune_keep_common": 0, "patience": 2}),
    "balanced": Preset("balanced", "the default: 128-d multichannel wordpiece embeddings, 150-unit BiLSTM"),
    "accurate": Preset("accurate", "more accurate, 3x the training time: 256-d multichannel embeddings, "
                                   "256-unit BiLSTM", distil={"embedding_dim": 256, "hidden_size": 256}),
}


def get_preset(name: str) -> Preset:
    from rasa_kd.errors import UserError

    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (choose from {', '.join(PRESET_NAMES)})")
    return PRESETS[name]


def distil_options(name: str = DEFAULT_PRESET, **values):
    """`DistilOptions` of the preset, with `values` (e.g. transfer=, dev=, out=) laid over it.
    The presets' student values are BiLSTM recipes: with student="bert" only the options'
    own (small-BERT) defaults apply."""
    from rasa_kd.distil import DistilOptions

    preset = get_preset(name)
    recipe = preset.distil if values.get("student", DistilOptions.student) == "bilstm" else {}
    return dataclasses.replace(DistilOptions(), preset=name, **{**recipe, **values})
