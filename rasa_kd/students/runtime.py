"""A loaded student: tokenizer + model (PyTorch or onnxruntime) behind one small interface."""
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from rasa_kd.errors import UserError
from rasa_kd.formats import student_package
from rasa_kd.nlu_data.entity_tags import entity_spans, is_special
from rasa_kd.students.tokenizers import load_tokenizer

BATCH_SIZE = 64


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class TorchBackend:
    name = "torch"

    def __init__(self, model):
        import torch

        self.torch = torch
        self.model = model.eval()

    @classmethod
    def from_package(cls, path: Path, manifest) -> "TorchBackend":
        model = student_package.build_model(manifest)
        student_package.load_weights(model, path)
        return cls(model)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        torch = self.torch
        with torch.inference_mode():
            outputs = self.model(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        return tuple(o.numpy() for o in outputs)


class OnnxBackend:
    name = "onnx"

    def __init__(self, model_file: Path, threads: int = 0):
        import onnxruntime as ort

        if not Path(model_file).is_file():
            raise UserError(f"{model_file}: ONNX model not found (run `rasa-kd export`)")

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise UserError(f"{model_file}: cannot load the ONNX model ({str(error).splitlines()[0][:100]})") from error
        self.model_file = model_file

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        return tuple(self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask}))


class Analysis(NamedTuple):
    """What one forward pass gives for a text (`Student.analyse`)."""

    probabilities: np.ndarray  # calibrated, [n_labels]
    sentence: np.ndarray  # [d]
    tokens: np.ndarray  # [n_tokens, d], special tokens and empty spans left out
    offsets: List[Tuple[int, int]]  # each token's characters
    entities: List[Dict[str, Any]]  # {start, end, entity, confidence}; [] for a student without tags
    fallback_confidence: Optional[float] = None  # the top intent's confidence by the package's fallback, if any


class Student:
    """`labels`, `predict`, `encode`, `encode_tokens`; `manifest` is the package's student.json."""

    def __init__(self, path: Path, manifest, tokenizer, backend):
        self.path = Path(path)
        self.manifest = manifest
        self.labels: List[str] = list(manifest["labels"])
        self.tags: Optional[List[str]] = manifest.get("tags")  # entity tags; None: intents only
        self.tokenizer = tokenizer
        self.backend = backend
        self.runtime = "pytorch" if backend.name == "torch" else "onnx"
        self.fallback = student_package.read_fallback(path, manifest)  # None: the package has none

    @property
    def architecture(self) -> str:
        return self.manifest["architecture"]

    def outputs(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """(logits [n, labels], sentence vectors [n, d]) for `texts` from one forward pass, in
        batches of BATCH_SIZE (what the unknown-intent scores read)."""
        logits, sentences = [], []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = self.tokenizer(texts[start:start + BATCH_SIZE])
            out = self.backend(batch["input_ids"], batch["attention_mask"])
            logits.append(out[0])
            sentences.append(out[1])
        if not logits:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0, self.dimension), np.float32)
        return np.concatenate(logits), np.concatenate(sentences)

    def outputs_as_parsed(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """`outputs` as Rasa gets them: the int8 runtime one message at a time (dynamic int8 scales
        activations per batch, and Rasa parses one message at a time)."""
        if self.runtime != "int8" or len(texts) < 2:
            return self.outputs(list(texts))
        rows = [self.outputs([text]) for text in texts]
        return np.concatenate([row[0] for row in rows]), np.concatenate([row[1] for row in rows])

    def confidences(self, texts: Sequence[str], fallback: bool = True) -> np.ndarray:
        """The intent confidences Rasa sees [n, len(labels)]: the calibrated probabilities or, when the
        package has a fallback (`rasa-kd fallback`) and `fallback`, those scaled so that the top one is
        the fallback's confidence."""
        logits, vectors = self.outputs_as_parsed(texts)
        probabilities = softmax(logits.astype(np.float32) / np.float32(self.temperature))
        if self.fallback is None or not fallback:
            return probabilities
        return self.fallback.confidences(probabilities, logits, vectors)

    @property
    def dimension(self) -> int:
        return int(self.manifest.get("outputs", {}).get("sentence_dim", 0))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.outputs(list(texts))[0]

    @property
    def temperature(self) -> float:
        """The calibration temperature distillation fitted on dev (1.0 for older packages)."""
        return float(self.manifest.get("calibration", {}).get("temperature", 1.0))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities [n, len(labels)] (softmax of logits / temperature),
        columns in `labels` order."""
        return softmax(self.logits(texts).astype(np.float32) / np.float32(self.temperature))

    def predict_labels(self, texts: Sequence[str]) -> List[str]:
        return [self.labels[i] for i in self.logits(texts).argmax(axis=1)]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors [n, d]."""
        return self.outputs(list(texts))[1]

    def encode_tokens(self, text: str) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
        """Token vectors [n_tokens, d] and each token's (start, end) characters in `text`.

        Special tokens ([CLS], [SEP]) and empty spans are left out; a text with no
        tokens gives an empty [0, d] array.
        """
        analysis = self.analyse([text])[0]
        return analysis.tokens, analysis.offsets


    def analyse(self, texts: Sequence[str]) -> List[Analysis]:
        """Everything one forward pass gives, per text: calibrated probabilities [n_labels]
        (as `predict`), the sentence vector [d] (as `encode`), token vectors [n_tokens, d]
        and their character spans (as `encode_tokens`), for a student with entity tags
        the entities its token head finds, and with a fallback the top intent's confidence
        by its unknown-intent score; in batches of BATCH_SIZE."""
        results = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = self.tokenizer(list(texts[start:start + BATCH_SIZE]))
            outputs = self.backend(batch["input_ids"], batch["attention_mask"])
            logits, sentences, tokens = outputs[:3]
            tag_probabilities = softmax(outputs[3].astype(np.float32)) if self.tags and len(outputs) > 3 else None
            probabilities = softmax(logits.astype(np.float32) / np.float32(self.temperature))
            judged = self.fallback.top_confidence(logits, sentences) if self.fallback else [None] * len(logits)
            for row, offsets in enumerate(batch["offsets"]):
                keep = [i for i, span in enumerate(offsets) if not is_special(span, 0)]
                spans = [tuple(offsets[i]) for i in keep]
                entities = [] if tag_probabilities is None else entity_spans(
                    tag_probabilities[row][keep], spans, list(range(len(keep))), self.tags, "all")
                results.append(Analysis(probabilities[row], sentences[row], tokens[row][keep], spans, entities,
                                        None if judged[row] is None else float(judged[row])))
        return results

    def entities(self, texts: Sequence[str]) -> List[List[Dict[str, Any]]]:
        """Per text, the entities {start, end, entity, confidence} of the token head ([] without tags)."""
        return [analysis.entities for analysis in self.analyse(list(texts))]


def load(path, runtime: str = "pytorch", threads: int = 0, *, onnx: bool = False, quantized: bool = False) -> Student:
    """Load a student package (see `rasa_kd.formats.student_package`); no teacher is needed.

    runtime: `auto` (the runtime student.json recommends, see
    `student_package.resolve_runtime`), `int8` (model.int8.onnx), `onnx` (model.onnx) or
    `pytorch` (model.safetensors, the default). A runtime whose file is missing stops
    with one UserError line naming the `rasa-kd export` that makes it. `onnx=True` and
    `quantized=True` are deprecated spellings of runtime="onnx" / "int8".
    """
    if quantized:
        runtime = student_package.deprecated_runtime_alias("load(quantized=True)", "int8")
    elif onnx:
        runtime = student_package.deprecated_runtime_alias("load(onnx=True)", "onnx")
    path = Path(path)
    manifest = student_package.read_manifest(path)
    runtime = student_package.resolve_runtime(path, manifest, runtime)
    weights = student_package.runtime_weights(path, runtime)
    tokenizer = load_tokenizer(path, manifest["tokenizer"])
    backend = TorchBackend.from_package(path, manifest) if runtime == "pytorch" else OnnxBackend(weights, threads)
    student = Student(path, manifest, tokenizer, backend)
    student.runtime = runtime
    return student
