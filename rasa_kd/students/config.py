"""The students' architecture configs: the one home of each architecture default.

`BiLSTMConfig` and `SmallBertConfig` hold what rebuilds a model (student.json's
`config` entry is `as_dict()` of one of them) and the defaults of its
hyper-parameters; `rasa_kd.students.distil_options.DistilOptions` takes its defaults from
here. This module imports nothing heavy, so option parsing and `--help` stay fast.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Type, Union

DROPOUT = 0.1
BILSTM_MODES = ("static", "non-static", "multichannel")
BILSTM_POOLINGS = ("max", "last")
PROJECTIONS = ("linear", "pca")


class StudentConfig:
    """What both configs share: JSON-able dicts in, JSON-able dicts out."""

    @classmethod
    def from_dict(cls, values: Union[Dict[str, Any], "StudentConfig"]):
        """The config from student.json's `config` dict (keys this release does not know are ignored)."""
        if isinstance(values, cls):
            return values
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in dict(values).items() if key in names})

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BiLSTMConfig(StudentConfig):
    """embeddings -> one BiLSTM layer -> pooling -> fully-connected -> logits (see students.bilstm)."""

    # 1e-3 underfits in the few hundred steps of a small transfer set (measured on the demo and Sara)
    LEARNING_RATE: ClassVar[float] = 5e-3

    vocab_size: int
    embedding_dim: int
    n_labels: int
    mode: str = "multichannel"
    hidden_size: int = 150
    pooling: str = "max"
    fc_size: int = 400
    dropout: float = DROPOUT
    unk_id: Optional[int] = None
    n_tags: int = 0  # entity tags per piece (a token head on the BiLSTM states); 0: intents only

    def __post_init__(self):
        if self.mode not in BILSTM_MODES or self.pooling not in BILSTM_POOLINGS:
            raise ValueError(f"mode must be one of {BILSTM_MODES} and pooling one of {BILSTM_POOLINGS}")

    @property
    def sentence_dim(self) -> int:
        return 2 * self.hidden_size


@dataclass
class SmallBertConfig(StudentConfig):
    """A down-scaled BERT on the teacher's wordpieces (see students.small_bert)."""

    LEARNING_RATE: ClassVar[float] = 3e-4

    vocab_size: int
    teacher_embedding_dim: int
    n_labels: int
    max_position_embeddings: int = 512
    hidden_size: int = 204
    num_hidden_layers: int = 5
    num_attention_heads: int = 3
    intermediate_size: int = 750
    type_vocab_size: int = 2
    dropout: float = DROPOUT
    projection: str = "linear"
    n_tags: int = 0  # entity tags per piece (a token head on the last hidden states); 0: intents only

    def __post_init__(self):
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}")

    @property
    def sentence_dim(self) -> int:
        return self.hidden_size


CONFIGS: Dict[str, Type[StudentConfig]] = {"bilstm": BiLSTMConfig, "bert": SmallBertConfig}
ARCHITECTURES = tuple(CONFIGS)


def config_class(architecture: str) -> Type[StudentConfig]:
    return CONFIGS[architecture]
