"""`rasa-kd evaluate`: quality, size and speed of a model on a Rasa NLU file.

Models: a student package (PyTorch; --onnx for model.onnx, --int8 for
model.int8.onnx, or give the .onnx file itself as --model) or a teacher folder (a
Hugging Face sequence-classification model with labels.json).

Reported: accuracy, micro-F1, macro-F1 and MCC; parameters (embeddings vs the
rest); size on disk of the files the model needs; latency in ms per example at
batch 1 (median over at least --latency-examples single-sentence calls after a
warm-up, tokenisation included) and sentences per second at batch 64.

Output: a table on stdout and a JSON file (--out; default
MODEL/metrics-<data file stem>.json, with -onnx or -int8 added for ONNX runs).
"""
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from rasa_kd.errors import UserError

HELP = "score a student package, ONNX student or teacher folder on an NLU file: quality, size, speed"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "sentencepiece.bpe.model", "spiece.model")


def add_arguments(parser) -> None:
    parser.description = __doc__
    parser.add_argument("--model", required=True, type=Path,
                        help="student package, a student's model.onnx / model.int8.onnx, or a teacher folder")
    parser.add_argument("--data", required=True, type=Path, help="Rasa NLU YAML with gold intents (e.g. test.yml)")
    parser.add_argument("--out", type=Path, help="metrics JSON (default MODEL/metrics-<data stem>.json)")
    parser.add_argument("--onnx", action="store_true", help="student: run model.onnx with onnxruntime")
    parser.add_argument("--int8", action="store_true", help="student: run model.int8.onnx with onnxruntime")
    parser.add_argument("--latency-examples", type=int, default=200,
                        help="single-sentence calls timed for the median latency (default 200)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for throughput (default 64)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: the library's default)")
    parser.add_argument("--no-speed", action="store_true", help="skip the latency and throughput measurements")
    parser.add_argument("--allow-unknown-labels", action="store_true",
                        help="score data whose intents the model does not know (they count as errors)")


# ------------------------------------------------------------------ models


class TeacherModel:
    """A teacher folder behind the students' `labels` / `predict_labels` interface, loaded
    with `rasa_kd.teacher.load_teacher` (the teacher's own pooling and max length)."""

    kind = "teacher"

    def __init__(self, path: Path, threads: int = 0):
        import torch

        from rasa_kd.teacher import load_teacher, read_settings

        if threads:
            torch.set_num_threads(threads)
        self.path, self.torch = path, torch
        self.model, self.tokenizer, self.labels = load_teacher(path)
        self.max_length = int(read_settings(path)["max_length"])

    def predict_labels(self, texts: Sequence[str]) -> List[str]:
        from rasa_kd.teacher import predict_logits

        logits = predict_logits(self.model, self.tokenizer, list(texts), self.max_length)
        return [self.labels[i] for i in logits.argmax(axis=1)]

    def parameters(self) -> Dict[str, int]:
        embedding = sum(p.numel() for m in self.model.modules() if isinstance(m, self.torch.nn.Embedding)
                        for p in m.parameters(recurse=False))
        total = sum(p.numel() for p in self.model.parameters())
        return {"embedding": embedding, "other": total - embedding, "total": total}

    def files(self) -> List[Path]:
        weights = [p for p in self.path.iterdir() if p.suffix in (".safetensors", ".bin")]
        names = TOKENIZER_FILES + ("config.json", "labels.json", "rasa_kd_teacher.json")
        return weights + [self.path / n for n in names if (self.path / n).is_file()]


class StudentModel:
    """A loaded student package with the files and parameter counts evaluate reports."""

    def __init__(self, path: Path, onnx_file: Optional[str], threads: int):
        from rasa_kd.students import load, package

        if onnx_file and not (path / onnx_file).is_file():
            raise UserError(f"{path / onnx_file}: not found (run `rasa-kd export --model {path} --onnx"
                            f"{' --quantize' if onnx_file == package.ONNX_INT8 else ''}`)")
        if threads and not onnx_file:
            import torch

            torch.set_num_threads(threads)
        self.student = load(path, onnx=bool(onnx_file), quantized=onnx_file == package.ONNX_INT8, threads=threads)
        self.path, self.labels = path, self.student.labels
        self.weights = onnx_file or package.WEIGHTS
        self.kind = "student-" + ({None: "pytorch", package.ONNX: "onnx", package.ONNX_INT8: "onnx-int8"}[onnx_file])

    def predict_labels(self, texts: Sequence[str]) -> List[str]:
        return self.student.predict_labels(texts)

    def parameters(self) -> Dict[str, int]:
        return dict(self.student.manifest.get("parameters", {}))

    def files(self) -> List[Path]:
        names = [self.weights, "student.json"] + list(self.student.manifest["tokenizer"].get("files", []))
        return [self.path / n for n in dict.fromkeys(names) if (self.path / n).is_file()]


def open_model(path: Path, onnx: bool = False, int8: bool = False, threads: int = 0):
    """A StudentModel or TeacherModel for `path` (see the module docstring)."""
    from rasa_kd.students import package

    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        return StudentModel(path.parent, path.name, threads)
    if (path / package.MANIFEST).is_file():
        onnx_file = package.ONNX_INT8 if int8 else package.ONNX if onnx else None
        return StudentModel(path, onnx_file, threads)
    if (path / "config.json").is_file() and (path / "labels.json").is_file():
        if onnx or int8:
            raise UserError(f"{path}: --onnx/--int8 apply to student packages, not teacher folders")
        return TeacherModel(path, threads)
    if not path.exists():
        raise UserError(f"{path}: model not found")
    raise UserError(f"{path}: neither a student package (student.json) nor a teacher folder (config.json + labels.json)")


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
             allow_unknown_labels: bool = False) -> Dict:
    """Score and time a model; writes and returns the metrics dict."""
    from rasa_kd.metrics import classification_scores
    from rasa_kd.nlu_io import read_examples

    examples = read_examples(data)
    if not examples:
        raise UserError(f"{data}: no examples")
    model = open_model(model_path, onnx, int8, threads)
    unknown = sorted({e.intent for e in examples} - set(model.labels))
    if unknown and not allow_unknown_labels:
        raise UserError(f"{data}: intents the model does not know: {', '.join(unknown[:10])} "
                        f"(use --allow-unknown-labels to score them as errors)")
    texts = [e.text for e in examples]
    predicted = model.predict_labels(texts)
    metrics = {"model": str(model_path), "kind": model.kind, "data": str(data),
               "scores": classification_scores([e.intent for e in examples], predicted),
               "parameters": model.parameters(),
               "size_bytes": sum(p.stat().st_size for p in model.files()),
               "files": sorted(p.name for p in model.files())}
    if speed:
        import torch

        metrics.update(latency_ms_batch1=latency_ms(model, texts, latency_examples),
                       latency_examples=max(latency_examples, 0), throughput_batch=batch_size,
                       sentences_per_second=throughput(model, texts, batch_size),
                       threads=threads or torch.get_num_threads())
    metrics["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = out or default_out(model_path, data, model.kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print_table(metrics, out)
    return metrics


def print_table(metrics: Dict, out: Path) -> None:
    scores, params = metrics["scores"], metrics["parameters"]
    rows = [("model", f"{metrics['model']} ({metrics['kind']})"), ("data", f"{metrics['data']} ({scores['n']} examples)"),
            ("accuracy", f"{scores['accuracy']:.4f}"), ("micro-F1", f"{scores['micro_f1']:.4f}"),
            ("macro-F1", f"{scores['macro_f1']:.4f}"), ("MCC", f"{scores['mcc']:.4f}"),
            ("parameters", f"{params.get('total', 0):,} ({params.get('embedding', 0):,} embedding, "
                           f"{params.get('other', 0):,} other)"),
            ("size on disk", f"{metrics['size_bytes'] / 1e6:.2f} MB")]
    if "latency_ms_batch1" in metrics:
        rows += [("latency, batch 1", f"{metrics['latency_ms_batch1']:.3f} ms/example (median of "
                                      f"{metrics['latency_examples']}, {metrics['threads']} threads)"),
                 (f"throughput, batch {metrics['throughput_batch']}", f"{metrics['sentences_per_second']:,.0f} sentences/s")]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    print(f"metrics: {out}")


def run(args) -> int:
    if args.latency_examples < 1 or args.batch_size < 1:
        raise UserError("--latency-examples and --batch-size must be positive")
    evaluate(args.model, args.data, args.out, args.onnx, args.int8, args.latency_examples, args.batch_size,
             args.threads, not args.no_speed, args.allow_unknown_labels)
    return 0
