"""`rasa-kd evaluate`: quality, size and speed of a model on a Rasa NLU file.

Models: a student package, run with --runtime: `auto` (the default: what is
deployed, i.e. the runtime `rasa-kd export` recorded in student.json when its file
exists, else model.onnx when exported, else PyTorch), `int8` (model.int8.onnx),
`onnx` (model.onnx) or `pytorch` (model.safetensors); --onnx and --int8 are aliases
of --runtime onnx / int8, and a student's .onnx file given as --model runs that
file. Or a teacher folder (a Hugging Face sequence-classification model with
labels.json), run with PyTorch.

Reported: accuracy, micro-F1, macro-F1 and MCC; calibration (expected calibration
error over 15 confidence bins, the student's temperature, and a reliability diagram
PNG beside the metrics JSON); the `FallbackClassifier` threshold at which the messages
kept reach --precision (0.95) on this data, with the share kept; with --unknown FILE
(sentences of intents the model never saw), how well the top confidence Rasa sees (a
student's fallback included, `rasa-kd fallback`) separates them from --data's (AUROC,
false-positive rate at 95 % true-positive rate) and, at the package's recommended
threshold (else the suggested one), the share of them under it and --data's accuracy
with and without it; parameters (embeddings vs the
rest); size on disk of the files the model needs (size_bytes) and by part
(size_parts_bytes: embedding tables, the other weights, tokenizer files, manifest
and config files; embeddings are the tensors the model class counts as embedding
parameters in a safetensors file, the tables read by embedding lookups (Gather,
int8 ones with their scale and zero point) in an ONNX file, and a teacher's
word/position/token-type tables); resident memory (memory_mb: RSS of a fresh
Python process once the model is loaded and has predicted one sentence, and the
increase over the runtime's imported libraries; --no-memory skips it); latency in
ms per example at batch 1 (median over at least --latency-examples
single-sentence calls after a warm-up, tokenisation included) and sentences per
second at batch 64.

Output: a table on stdout and a JSON file (--out; default
MODEL/metrics-<data file stem>.json, with -onnx or -int8 added for ONNX runs).
"""
import json
import logging
import os
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

import onnx

import torch

from onnx import numpy_helper

from sklearn.metrics import roc_auc_score

from rasa_kd.errors import UserError
from rasa_kd.evaluation import calibration
from rasa_kd.evaluation.calibration import softmax
from rasa_kd.evaluation.metrics import classification_scores
from rasa_kd.formats import student_package
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.student_package import RUNTIMES, deprecated_runtime_alias
from rasa_kd.options import option
from rasa_kd.students import load
from rasa_kd.students.bilstm import BiLSTMStudent
from rasa_kd.students.small_bert import SmallBertStudent
from rasa_kd.teachers.folder import TeacherFolder

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "sentencepiece.bpe.model", "spiece.model")
TEACHER_MANIFEST_FILES = ("config.json", "labels.json", "rasa_kd_teacher.json")
KINDS = {"pytorch": "student-pytorch", "onnx": "student-onnx", "int8": "student-onnx-int8"}
# what a student's runtime imports to run it: the memory probe imports these before its baseline
STUDENT_MODULES = {"bilstm": ("torch", "rasa_kd.students.bilstm"),
                   "bert": ("torch", "rasa_kd.students.small_bert", "transformers.models.bert.modeling_bert"),
                   "onnx": ("onnxruntime",)}
MB = 1e6
# ONNX lookup op -> its embedding-table inputs; names onnxruntime's int8 quantization gives a table's parts
EMBEDDING_LOOKUPS = {"Gather": slice(0, 1), "EmbedLayerNormalization": slice(2, 5),
                     "QEmbedLayerNormalization": slice(2, 5)}
QUANTIZED, QUANTIZATION_PARAMETERS = "_quantized", ("_scale", "_zero_point")
DEFAULT_PRECISION = 0.95


@dataclass
class EvaluateOptions:
    """`rasa-kd evaluate`'s options; see the module docstring."""

    model: Path = option(help="student package, a student's model.onnx / model.int8.onnx, or a teacher folder")
    data: Path = option(help="Rasa NLU YAML with gold intents (e.g. test.yml)")
    out: Optional[Path] = option(None, "metrics JSON (default MODEL/metrics-<data stem>.json)")
    runtime: str = option("auto", "student: auto (what the package deploys), int8, onnx or pytorch",
                          choices=RUNTIMES)
    onnx: bool = option(False, "deprecated: --runtime onnx")
    int8: bool = option(False, "deprecated: --runtime int8")
    latency_examples: int = option(200, "single-sentence calls timed for the median latency")
    batch_size: int = option(64, "batch size for throughput")
    threads: int = option(0, "CPU threads (0: the library's default)")
    no_speed: bool = option(False, "skip the latency and throughput measurements")
    no_memory: bool = option(False, "skip the resident-memory measurement")
    precision: float = option(DEFAULT_PRECISION, "suggest the FallbackClassifier threshold at which the messages "
                                                 "kept reach this precision on --data (run on dev to choose it)")
    unknown: Optional[Path] = option(None, "NLU YAML of sentences whose intents the model was never trained on: "
                                           "report how well the confidence Rasa sees separates them from --data "
                                           "(AUROC, FPR at 95 %% TPR, the share under the recommended threshold)")
    allow_unknown_labels: bool = option(False, "score data whose intents the model does not know (they count as "
                                               "errors)")


# ------------------------------------------------------------------ models


class ModelFiles:
    """The files a model needs, grouped into weights, tokenizer and manifest, with sizes by part."""

    def weight_files(self) -> List[Path]:
        raise NotImplementedError

    def tokenizer_files(self) -> List[Path]:
        raise NotImplementedError

    def manifest_files(self) -> List[Path]:
        raise NotImplementedError

    def is_embedding(self, tensor_name: str) -> bool:
        raise NotImplementedError

    def files(self) -> List[Path]:
        return self.weight_files() + self.tokenizer_files() + self.manifest_files()

    def size_parts(self) -> Dict[str, int]:
        weights = self.weight_files()
        embeddings = sum(embedding_bytes(path, self.is_embedding) for path in weights)
        return {"embeddings": embeddings, "other": total_bytes(weights) - embeddings,
                "tokenizer": total_bytes(self.tokenizer_files()), "manifest": total_bytes(self.manifest_files())}


class TeacherModel(ModelFiles):
    """A teacher folder behind the students' `labels` / `predict_labels` interface (its own
    pooling and max length, see `rasa_kd.teachers.folder`)."""

    kind = "teacher"
    runtime = "pytorch"

    def __init__(self, path: Path, threads: int = 0):
        if threads:
            torch.set_num_threads(threads)
        self.path, self.torch = path, torch
        self.folder = TeacherFolder(path)
        self.model, self.labels = self.folder.classifier, self.folder.labels
        model_type = self.model.config.model_type.replace("-", "_")
        self.libraries = ("torch", "rasa_kd.teachers.folder", f"transformers.models.{model_type}.modeling_{model_type}")

    def predict(self, texts: Sequence[str]):
        """Probabilities (softmax of the logits; teachers are not temperature-scaled)."""
        return softmax(self.folder.predict_logits(list(texts)))

    def predict_labels(self, texts: Sequence[str]) -> List[str]:
        return [self.labels[i] for i in self.predict(texts).argmax(axis=1)]

    def confidences(self, texts: Sequence[str]):
        return self.predict(texts)

    def parameters(self) -> Dict[str, int]:
        embedding = sum(p.numel() for m in self.model.modules() if isinstance(m, self.torch.nn.Embedding)
                        for p in m.parameters(recurse=False))
        total = sum(p.numel() for p in self.model.parameters())
        return {"embedding": embedding, "other": total - embedding, "total": total}

    def weight_files(self) -> List[Path]:
        return sorted(p for p in self.path.iterdir() if p.suffix in (".safetensors", ".bin"))

    def tokenizer_files(self) -> List[Path]:
        return existing(self.path, TOKENIZER_FILES)

    def manifest_files(self) -> List[Path]:
        return existing(self.path, TEACHER_MANIFEST_FILES)

    def is_embedding(self, tensor_name: str) -> bool:
        """The embedding tables (word, position, token type), as `parameters` counts them."""
        return tensor_name.endswith("_embeddings.weight")


class StudentModel(ModelFiles):
    """A student package loaded with one runtime, with the files and parameter counts evaluate reports."""

    def __init__(self, path: Path, runtime: str, threads: int):
        self.path = path
        self.manifest = student_package.read_manifest(path)
        self.runtime = student_package.resolve_runtime(path, self.manifest, runtime)
        if threads and self.runtime == "pytorch":
            torch.set_num_threads(threads)
        self.student = load(path, runtime=self.runtime, threads=threads)
        self.labels, self.kind = self.student.labels, KINDS[self.runtime]
        code = STUDENT_MODULES[self.manifest["architecture"] if self.runtime == "pytorch" else "onnx"]
        wordpieces = self.manifest["tokenizer"].get("kind") == "wordpieces"
        self.libraries = code + ("rasa_kd.students.runtime",) + (("tokenizers",) if wordpieces else ())

    def predict(self, texts: Sequence[str]):
        """Calibrated probabilities as deployed (int8 one message at a time, as Rasa parses)."""
        return self.student.confidences(texts, fallback=False)

    def confidences(self, texts: Sequence[str]):
        """What Rasa sees: the probabilities scaled so that the top one is the fallback's probability
        that it is right, when the package has a fallback (`rasa-kd fallback`)."""
        return self.student.confidences(texts)

    def predict_labels(self, texts: Sequence[str]) -> List[str]:
        """Batched as given: what the latency and throughput measurements time."""
        return self.student.predict_labels(texts)

    def parameters(self) -> Dict[str, int]:
        return dict(self.manifest.get("parameters", {}))

    def weight_files(self) -> List[Path]:
        return [self.path / student_package.RUNTIME_FILES[self.runtime]]

    def tokenizer_files(self) -> List[Path]:
        others = {student_package.MANIFEST, student_package.RUNTIME_FILES[self.runtime]}
        names = [n for n in student_package.runtime_files(self.manifest, self.runtime) if n not in others]
        return existing(self.path, names)

    def manifest_files(self) -> List[Path]:
        return [self.path / student_package.MANIFEST]

    def is_embedding(self, tensor_name: str) -> bool:
        return student_class(self.manifest["architecture"]).is_embedding_parameter(tensor_name)


def student_class(architecture: str):
    return {"bilstm": BiLSTMStudent, "bert": SmallBertStudent}[architecture]


def onnx_file_runtime(path: Path) -> str:
    """The runtime of a student's .onnx file given as --model."""
    runtimes = {name: runtime for runtime, name in student_package.RUNTIME_FILES.items() if name.endswith(".onnx")}
    if path.name not in runtimes:
        raise UserError(f"{path}: not a student's ONNX file (expected {' or '.join(runtimes)})")
    return runtimes[path.name]


def open_model(path: Path, runtime: str = "auto", threads: int = 0):
    """A StudentModel or TeacherModel for `path` (see the module docstring)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        return StudentModel(path.parent, onnx_file_runtime(path), threads)
    if (path / student_package.MANIFEST).is_file():
        return StudentModel(path, runtime, threads)
    if (path / "config.json").is_file() and (path / "labels.json").is_file():
        if runtime not in ("auto", "pytorch"):
            raise UserError(f"{path}: --runtime {runtime} applies to student packages, "
                            f"not teacher folders")
        return TeacherModel(path, threads)
    if not path.exists():
        raise UserError(f"{path}: model not found")
    raise UserError(f"{path}: neither a student package (student.json) nor a teacher folder (config.json + labels.json)")


# ------------------------------------------------------------------ size on disk


def existing(folder: Path, names: Sequence[str]) -> List[Path]:
    return [folder / name for name in dict.fromkeys(names) if (folder / name).is_file()]


def total_bytes(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def embedding_bytes(weights: Path, is_embedding: Callable[[str], bool]) -> int:
    """Bytes of the embedding tables in a weights file (a pickled .bin is not split: 0)."""
    if weights.suffix == ".safetensors":
        return sum(size for name, size in safetensors_tensor_bytes(weights).items() if is_embedding(name))
    if weights.suffix == ".onnx":
        return onnx_embedding_bytes(weights)
    return 0


def safetensors_tensor_bytes(path: Path) -> Dict[str, int]:
    """Tensor name -> bytes, from the safetensors header (the weights are not read)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {name: info["data_offsets"][1] - info["data_offsets"][0]
            for name, info in header.items() if name != "__metadata__"}


def onnx_embedding_bytes(path: Path) -> int:
    """Bytes of the initializers that embedding lookups read: the data input of Gather
    nodes, the word/position/segment tables of a fused (Q)EmbedLayerNormalization, and,
    for an int8 table `X_quantized`, onnxruntime's `X_scale` and `X_zero_point`."""
    graph = onnx.load(str(path)).graph
    sizes = {tensor.name: onnx_tensor_bytes(tensor) for tensor in graph.initializer}
    tables = {name for node in graph.node if node.op_type in EMBEDDING_LOOKUPS
              for name in node.input[EMBEDDING_LOOKUPS[node.op_type]] if name in sizes}
    tables |= {table[:-len(QUANTIZED)] + suffix for table in tables if table.endswith(QUANTIZED)
               for suffix in QUANTIZATION_PARAMETERS}
    return sum(sizes.get(name, 0) for name in tables)


def onnx_tensor_bytes(tensor) -> int:
    return len(tensor.raw_data) if tensor.raw_data else numpy_helper.to_array(tensor).nbytes


# ------------------------------------------------------------------ memory


# Loads through the serving code only (not this module, which imports torch for the teachers).
MEMORY_PROBE = """
import importlib, json, sys
from pathlib import Path
import psutil
path, runtime, threads, *libraries = sys.argv[1:]
for name in libraries:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:  # a teacher type without its own transformers module
        pass
process = psutil.Process()
before = process.memory_info().rss
if runtime == "pytorch" and not (Path(path) / "student.json").is_file():
    from rasa_kd.teachers.folder import TeacherFolder
    TeacherFolder(path).predict_logits(["hello there"])
else:
    from rasa_kd.students import load
    load(path, runtime=runtime, threads=int(threads)).predict_labels(["hello there"])
after = process.memory_info().rss
print(json.dumps({"rss_loaded_mb": after / 1e6, "rss_model_mb": (after - before) / 1e6,
                  "torch_loaded": "torch" in sys.modules}))
"""


def resident_memory(model, threads: int) -> Dict[str, float]:
    """RSS of a fresh Python process that imported the runtime's libraries, loaded `model`
    and predicted one sentence, and the increase over the libraries alone (MB)."""
    command = [sys.executable, "-c", MEMORY_PROBE, str(model.path), model.runtime, str(threads), *model.libraries]
    env = dict(os.environ, USE_TF="0", TRANSFORMERS_NO_TF="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{model.path}: measuring memory failed ({tail[:160]}); --no-memory skips it")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ measurements


def cycle(texts: Sequence[str], n: int) -> List[str]:
    return [texts[i % len(texts)] for i in range(max(n, 0))]


def latency_ms(model, texts: Sequence[str], n: int, warmup: int = 10) -> float:
    """Median ms per single-sentence call over at least `n` calls."""
    for text in cycle(texts, warmup):
        model.predict_labels([text])
    times = []
    for text in cycle(texts, n):
        started = time.perf_counter()
        model.predict_labels([text])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def throughput(model, texts: Sequence[str], batch_size: int) -> float:
    """Sentences per second in batches of `batch_size` (at least 4 batches, after one warm-up batch)."""
    sample = cycle(texts, max(len(texts), 4 * batch_size))
    model.predict_labels(sample[:batch_size])
    started = time.perf_counter()
    for start in range(0, len(sample), batch_size):
        model.predict_labels(sample[start:start + batch_size])
    return len(sample) / (time.perf_counter() - started)


def default_out(model_path: Path, data: Path, kind: str) -> Path:
    folder = model_path.parent if model_path.is_file() else model_path
    suffix = {"student-onnx": "-onnx", "student-onnx-int8": "-int8"}.get(kind, "")
    return folder / f"metrics-{data.stem}{suffix}.json"


def evaluate(model_path: Path, data: Path, out: Optional[Path] = None, onnx: bool = False, int8: bool = False,
             latency_examples: int = 200, batch_size: int = 64, threads: int = 0, speed: bool = True,
             allow_unknown_labels: bool = False, runtime: str = "auto", memory: bool = True,
             precision: float = DEFAULT_PRECISION, unknown: Optional[Path] = None) -> Dict:
    """Score, size and time a model; writes and returns the metrics dict. `onnx` and
    `int8` are deprecated spellings of `runtime` "onnx" and "int8"."""
    if int8 or onnx:
        runtime = deprecated_runtime_alias("--int8" if int8 else "--onnx", "int8" if int8 else "onnx")

    examples = read_examples(data)
    if not examples:
        raise UserError(f"{data}: no examples")
    model = open_model(model_path, runtime, threads)
    unknown_labels = sorted({e.intent for e in examples} - set(model.labels))
    if unknown_labels and not allow_unknown_labels:
        raise UserError(f"{data}: intents the model does not know: {', '.join(unknown_labels[:10])} "
                        f"(use --allow-unknown-labels to score them as errors)")
    texts = [e.text for e in examples]
    probabilities = model.predict(texts)
    predicted = [model.labels[i] for i in probabilities.argmax(axis=1)]
    out = out or default_out(model_path, data, model.kind)
    metrics = {"model": str(model_path), "kind": model.kind, "data": str(data),
               "scores": classification_scores([e.intent for e in examples], predicted),
               "calibration": confidence_report(model, examples, probabilities, out, precision),
               "parameters": model.parameters(),
               "size_bytes": total_bytes(model.files()), "size_parts_bytes": model.size_parts(),
               "files": sorted(p.name for p in model.files())}
    if unknown:
        metrics["unknown_intents"] = unknown_report(model, examples, unknown, metrics["calibration"]["fallback"])
    if memory:
        metrics["memory_mb"] = resident_memory(model, threads)
    if speed:
        metrics.update(latency_ms_batch1=latency_ms(model, texts, latency_examples),
                       latency_examples=max(latency_examples, 0), throughput_batch=batch_size,
                       sentences_per_second=throughput(model, texts, batch_size),
                       threads=threads or torch.get_num_threads())
    metrics["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print_table(metrics, out)
    return metrics


def confidence_report(model, examples, probabilities, out: Path, precision: float) -> Dict:
    """ECE (15 bins), the reliability diagram (PNG beside the metrics JSON) and the
    FallbackClassifier threshold that keeps `precision` on this data. Examples of
    intents the model does not know count as wrong at any confidence."""
    index = {label: i for i, label in enumerate(model.labels)}
    gold = [index.get(e.intent, -1) for e in examples]
    picture = out.with_suffix(".reliability.png")
    calibration.reliability_diagram(probabilities, gold, picture, f"{Path(model.path).name} ({model.kind})")
    return {"ece": round(calibration.expected_calibration_error(probabilities, gold), 4),
            "bins": calibration.BINS, "mean_confidence": round(float(probabilities.max(axis=1).mean()), 4),
            "temperature": getattr(getattr(model, "student", None), "temperature", None),
            "fallback": calibration.fallback_threshold(probabilities, gold, precision),
            "reliability_diagram": str(picture)}


def unknown_report(model, examples, unknown: Path, suggested: Dict) -> Dict:
    """How well the confidence Rasa sees (a student's fallback included) tells `unknown`'s sentences
    (intents the model was never trained on) from `examples` (see `separation`), and at the
    threshold the package recommends (`rasa-kd fallback`; else the one `suggested` for --precision)
    the known examples' accuracy with and without it."""
    texts = [e.text for e in read_examples(unknown)]
    if not texts:
        raise UserError(f"{unknown}: no examples")
    recommended = ((getattr(model, "manifest", None) or {}).get("fallback") or {}).get("threshold")
    threshold = recommended if recommended is not None else suggested["threshold"]
    known = model.confidences([e.text for e in examples])
    correct = np.array([model.labels[i] == e.intent for i, e in zip(known.argmax(axis=1), examples)])
    kept = known.max(axis=1) >= (np.inf if threshold is None else threshold)
    return {"data": str(unknown), **separation(known, model.confidences(texts), threshold),
            "threshold_from": "the package (rasa-kd fallback)" if recommended is not None else "--precision",
            "known_accuracy": round(float(correct.mean()), 4),
            "known_accuracy_at_threshold": round(float((correct & kept).mean()), 4)}


def separation(known_probabilities, unknown_probabilities, threshold: Optional[float]) -> Dict:
    """AUROC of the top confidence (known = positive), the false-positive rate at 95 % true-positive
    rate, and the share of unknown sentences under `threshold`."""
    known, unknown = known_probabilities.max(axis=1), unknown_probabilities.max(axis=1)
    cut = np.quantile(known, 0.05)  # 95 % of known sentences are at or above it
    scores = np.concatenate([known, unknown])
    truth = np.concatenate([np.ones(len(known)), np.zeros(len(unknown))])
    return {"n": len(unknown), "auroc": round(float(roc_auc_score(truth, scores)), 4),
            "fpr_at_95_tpr": round(float(np.mean(unknown >= cut)), 4), "threshold": threshold,
            "under_threshold": None if threshold is None else round(float(np.mean(unknown < threshold)), 4)}


def print_table(metrics: Dict, out: Path) -> None:
    scores, params = metrics["scores"], metrics["parameters"]
    rows = [("model", f"{metrics['model']} ({metrics['kind']})"), ("data", f"{metrics['data']} ({scores['n']} examples)"),
            ("accuracy", f"{scores['accuracy']:.4f}"), ("micro-F1", f"{scores['micro_f1']:.4f}"),
            ("macro-F1", f"{scores['macro_f1']:.4f}"), ("MCC", f"{scores['mcc']:.4f}"),
            ("calibration", calibration_line(metrics["calibration"])),
            ("fallback threshold", threshold_line(metrics["calibration"]["fallback"])),
            ("parameters", f"{params.get('total', 0):,} ({params.get('embedding', 0):,} embedding, "
                           f"{params.get('other', 0):,} other)"),
            ("size on disk", f"{metrics['size_bytes'] / MB:.2f} MB (" + ", ".join(
                f"{part} {size / MB:.2f}" for part, size in metrics["size_parts_bytes"].items()) + ")")]
    if "unknown_intents" in metrics:
        report = metrics["unknown_intents"]
        under = "" if report["under_threshold"] is None else \
            f", {report['under_threshold']:.0%} under the threshold {report['threshold']:.2f}"
        rows.append(("unknown intents", f"AUROC {report['auroc']:.4f}, FPR at 95 % TPR {report['fpr_at_95_tpr']:.4f} "
                                        f"({report['n']} sentences{under}; known accuracy "
                                        f"{report['known_accuracy_at_threshold']:.4f} with it, "
                                        f"{report['known_accuracy']:.4f} without)"))
    if "memory_mb" in metrics:
        rows.append(("memory (RSS)", f"{metrics['memory_mb']['rss_loaded_mb']:.1f} MB loaded, "
                                     f"{metrics['memory_mb']['rss_model_mb']:.1f} MB for the model"))
    if "latency_ms_batch1" in metrics:
        rows += [("latency, batch 1", f"{metrics['latency_ms_batch1']:.3f} ms/example (median of "
                                      f"{metrics['latency_examples']}, {metrics['threads']} threads)"),
                 (f"throughput, batch {metrics['throughput_batch']}", f"{metrics['sentences_per_second']:,.0f} sentences/s")]
    width = max(len(name) for name, _ in rows)
    logger.info("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    logger.info(f"metrics: {out}")


def calibration_line(report: Dict) -> str:
    temperature = f", temperature {report['temperature']:.2f}" if report.get("temperature") else ""
    return (f"ECE {report['ece']:.4f} ({report['bins']} bins{temperature}, mean confidence "
            f"{report['mean_confidence']:.3f}); diagram {report['reliability_diagram']}")


def threshold_line(fallback: Dict) -> str:
    if fallback["threshold"] is None:
        return f"no threshold reaches precision {fallback['target_precision']:.2f} on this data"
    return (f"{fallback['threshold']:.2f} keeps {fallback['kept']:.0%} of messages at precision "
            f"{fallback['precision']:.3f} (target {fallback['target_precision']:.2f}; choose it on dev)")


def evaluate_from_options(options: EvaluateOptions) -> Dict:
    if options.latency_examples < 1 or options.batch_size < 1:
        raise UserError("--latency-examples and --batch-size must be positive")
    if not 0 < options.precision <= 1:
        raise UserError(f"--precision must be in (0, 1], got {options.precision}")
    return evaluate(options.model, options.data, options.out, onnx=options.onnx, int8=options.int8,
                    latency_examples=options.latency_examples, batch_size=options.batch_size,
                    threads=options.threads, speed=not options.no_speed,
                    allow_unknown_labels=options.allow_unknown_labels, runtime=options.runtime,
                    memory=not options.no_memory, precision=options.precision, unknown=options.unknown)
