"""`rasa-kd export`: a student package to ONNX, optionally quantized to int8.

--onnx      writes STUDENT/model.onnx (opset 17, dynamic batch and length; inputs
            input_ids and attention_mask int64 [batch, length]; outputs logits
            [batch, labels], sentence [batch, d], tokens [batch, length, d], and for a
            student with entity tags tag_logits [batch, length, tags]) and
            checks its outputs against PyTorch on sample sentences (max abs diff).
            BERT students are then passed through onnxruntime's transformer optimizer
            (attention, bias-GELU and skip-LayerNorm fusion: same outputs, about
            10-20 % faster at batch 1 on CPU); --no-fuse keeps the plain graph.
--quantize  also writes STUDENT/model.int8.onnx (onnxruntime dynamic int8
            quantization of the weights, embedding tables included; an entity tag
            head stays float, `tag_head_nodes`); with --data,
            the accuracy of PyTorch and int8 on that NLU file and the change are
            reported (for a student with entity tags also the entity-level F1,
            `rasa_kd.evaluation.metrics.entity_scores`).

The deployed runtime: export records in student.json (`runtime`, `runtime_reason`)
which file `rasa_kd.students.load(path, runtime="auto")`, `rasa-kd evaluate` and the
Rasa components (`runtime: auto`) run: `int8` when --quantize and --data are given
and int8 accuracy on --data (use the dev set), and its entity F1 for a student with entity
tags, are at most --int8-max-drop (or one example of --data, or for entities one of its
entities, if that is more) below PyTorch's, else `onnx` (fp32; the log says why).

Files are written atomically (temporary file, then rename). A summary goes to
STUDENT/export.json.
"""
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from onnx import TensorProto
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model

from rasa_kd.errors import UserError
from rasa_kd.evaluation.metrics import entity_scores
from rasa_kd.formats import student_package
from rasa_kd.formats.nlu_yaml import read_examples
from rasa_kd.formats.outputs import atomic_file
from rasa_kd.options import option
from rasa_kd.students import load
from rasa_kd.students.presets import Preset

logger = logging.getLogger(__name__)

OUTPUT_NAMES = ["logits", "sentence", "tokens"]
SAMPLE_TEXTS = ["hello there!", "I would like to book a table for two tomorrow at 8 pm, please.", "bye",
                "what is the weather like in Berlin?", "", "Ünïcödé wörds and numbers 12345"]


@dataclass
class ExportOptions:
    model: Path = option(help="student package folder (from `rasa-kd distil`)")
    onnx: bool = option(False, "write model.onnx and check it against PyTorch")
    quantize: bool = option(False, "also write model.int8.onnx (dynamic int8); implies --onnx")
    data: Optional[Path] = option(None, "NLU file (the dev set): check on its sentences, report the int8 accuracy "
                                        "change and choose the deployed runtime by it")
    fuse: bool = option(True, "BERT students: keep the plain ONNX graph (default: fuse attention/GELU/LayerNorm)",
                        flags=("--no-fuse",), action="store_false")
    opset: int = option(17, "ONNX opset")
    tolerance: float = option(1e-3, "largest allowed |ONNX - PyTorch| logit difference for model.onnx")
    int8_max_drop: float = option(Preset.int8_max_drop, "int8 becomes the deployed runtime when its accuracy on "
                                                        "--data is at most this far (or one example) below PyTorch's")


def export_onnx(student, target: Path, opset: int = 17) -> None:
    """Trace the student's torch model to `target` with dynamic batch and length."""
    model = student.backend.model.eval()
    batch = student.tokenizer(["hello there my friend", "hi"])
    inputs = (torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"]))
    dynamic = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
               "logits": {0: "batch"}, "sentence": {0: "batch"}, "tokens": {0: "batch", 1: "length"},
               "tag_logits": {0: "batch", 1: "length"}}
    names = OUTPUT_NAMES + ["tag_logits"] if student.tags else OUTPUT_NAMES
    if not student.tags:
        del dynamic["tag_logits"]
    with atomic_file(target) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        torch.onnx.export(model, inputs, str(tmp), input_names=["input_ids", "attention_mask"],
                          output_names=names, dynamic_axes=dynamic, opset_version=opset,
                          do_constant_folding=True, dynamo=False)


def fuse_transformer(student, onnx_file: Path) -> Dict[str, int]:
    """Rewrite a BERT student's graph in place with onnxruntime's fused contrib ops
    (Attention, BiasGelu, SkipLayerNormalization); returns the fused-op counts."""
    config = student.manifest["config"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        # opt_level 0: graph fusion only, no hardware-specific rewrites, so the file stays portable
        fused = optimize_model(str(onnx_file), model_type="bert", num_heads=config["num_attention_heads"],
                               hidden_size=config["hidden_size"], opt_level=0)
    with atomic_file(onnx_file) as tmp:
        fused.save_model_to_file(str(tmp))
    return {op: count for op, count in fused.get_fused_operator_statistics().items() if count}


def tag_head_nodes(onnx_file: Path) -> List[str]:
    """The nodes between the token vectors (`tokens`) and `tag_logits` ([] without a token head).
    They stay float in the int8 model: int8 activations there cost the entities (rasa-demo dev,
    exact-span F1 0.766 PyTorch, 0.603 all int8, 0.769 with the head in float, +0.02 MB)."""
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    producers = {output: node for node in graph.node for output in node.output}
    names, pending = [], ["tag_logits"]
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.name in names:
            continue
        names.append(node.name)
        pending += [tensor for tensor in node.input if tensor != "tokens"]
    return names


def quantize(source: Path, target: Path) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs a generic "consider pre-processing" warning
    try:
        with atomic_file(target) as tmp:
            # shape inference cannot type the outputs of fused contrib ops (Attention); they are float
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8,
                             nodes_to_exclude=tag_head_nodes(source),
                             extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def max_differences(reference, other, texts: List[str]) -> Dict[str, float]:
    """Max |difference| of logits, probabilities and sentence vectors (and tag logits) of two loaded students."""
    diffs = {"logits": 0.0, "probabilities": 0.0, "sentence": 0.0, **({"tag_logits": 0.0} if reference.tags else {})}
    for start in range(0, len(texts), 64):
        chunk = texts[start:start + 64]
        batch = reference.tokenizer(chunk)
        a = reference.backend(batch["input_ids"], batch["attention_mask"])
        b = other.backend(batch["input_ids"], batch["attention_mask"])
        diffs["logits"] = max(diffs["logits"], float(np.abs(a[0] - b[0]).max()))
        diffs["sentence"] = max(diffs["sentence"], float(np.abs(a[1] - b[1]).max()))
        if reference.tags:
            diffs["tag_logits"] = max(diffs["tag_logits"], float(np.abs(a[3] - b[3]).max()))
        diffs["probabilities"] = max(diffs["probabilities"],
                                     float(np.abs(reference.predict(chunk) - other.predict(chunk)).max()))
    return diffs


def scores_on(student, examples) -> Dict[str, float]:
    """Intent accuracy on the examples and, for a student with entity tags, entity-level F1 (and the
    number of gold entities)."""
    analyses = student.analyse([e.text for e in examples])
    scores = {"accuracy": float(np.mean([student.labels[int(np.argmax(a.probabilities))] == e.intent
                                         for a, e in zip(analyses, examples)]))}
    if student.tags:
        entities = entity_scores([e.entities for e in examples], [a.entities for a in analyses])
        scores.update(entity_f1=entities["entity_f1"], gold_entities=entities["gold_entities"])
    return scores


def export(model: Path, onnx: bool = True, quantized: bool = False, data: Optional[Path] = None,
           opset: int = 17, tolerance: float = 1e-3, fuse: bool = True,
           int8_max_drop: float = Preset.int8_max_drop) -> Dict:
    """Export and check; returns the summary also written to export.json."""
    if not (onnx or quantized):
        raise UserError("nothing to export: give --onnx and/or --quantize")
    reference = load(model)
    examples = read_examples(data) if data else []
    texts = [e.text for e in examples][:512] or SAMPLE_TEXTS
    summary = {"opset": opset, "check_sentences": len(texts)}
    onnx_file = model / student_package.ONNX
    export_onnx(reference, onnx_file, opset)
    if fuse and reference.architecture == "bert":
        try:
            summary["fused_ops"] = fuse_transformer(reference, onnx_file)
        except Exception as error:  # the optimizer's pattern matching is best effort: keep the plain graph
            logger.info(f"{onnx_file}: fusion skipped, plain graph kept ({str(error).splitlines()[0][:100]})")
    exported = load(model, runtime="onnx")
    summary["onnx"] = {"file": student_package.ONNX, "bytes": onnx_file.stat().st_size,
                       "max_abs_diff": max_differences(reference, exported, texts)}
    diff = summary["onnx"]["max_abs_diff"]["logits"]
    logger.info(f"{onnx_file}: {onnx_file.stat().st_size / 1e6:.1f} MB; max |ONNX - PyTorch|: logits {diff:.2e}, "
                f"probabilities {summary['onnx']['max_abs_diff']['probabilities']:.2e} on {len(texts)} sentences")
    if diff > tolerance:
        raise UserError(f"{onnx_file}: ONNX logits differ from PyTorch by {diff:.2e} (> --tolerance {tolerance})")
    if quantized:
        summary["int8"] = quantize_and_check(model, reference, texts, examples)
    summary["runtime"], summary["runtime_reason"] = deployed_runtime(summary.get("int8"), int8_max_drop)
    logger.info(f"deployed runtime: {summary['runtime']} ({summary['runtime_reason']})")
    student_package.write_json(summary, model / "export.json")
    student_package.update_manifest(model, runtime=summary["runtime"], runtime_reason=summary["runtime_reason"])
    return summary


def deployed_runtime(int8: Optional[Dict], max_drop: float) -> Tuple[str, str]:
    """("int8" or "onnx", why): int8 only when it was checked on data and kept accuracy (and entity
    F1): lost at most `max_drop`, or one example (entity) of a dev set too small to tell one flip
    from damage (58 sentences: one is 1.7 %; fp32 is 4x the size)."""
    if int8 is None:
        return "onnx", "no int8 model (export --quantize)"
    if "accuracy_change" not in int8:
        return "onnx", "int8 not checked on data (export --quantize --data DEV)"
    checks = [("accuracy", int8["accuracy_change"], int8["data_examples"], "example", "examples")]
    if int8.get("entity_f1_change") is not None:
        checks.append(("entity F1", int8["entity_f1_change"], int8["data_entities"], "entity", "entities"))
    said, failed = [], False
    for name, change, count, unit, units in checks:
        limit = max(max_drop, 1 / max(count, 1))
        said.append(f"int8 {name} {change:+.4f} on {count} {units} (limit -{limit:.4g}: -{max_drop:g} or one {unit})")
        failed = failed or change < -limit - 1e-9
    return ("onnx", f"{'; '.join(said)}: fp32 kept") if failed else ("int8", "; ".join(said))


def quantize_and_check(model: Path, reference, texts, examples) -> Dict:
    int8_file = model / student_package.ONNX_INT8
    quantize(model / student_package.ONNX, int8_file)
    int8 = load(model, runtime="int8")
    report = {"file": student_package.ONNX_INT8, "bytes": int8_file.stat().st_size,
              "max_abs_diff": max_differences(reference, int8, texts)}
    logger.info(f"{int8_file}: {int8_file.stat().st_size / 1e6:.1f} MB; max |int8 - PyTorch|: logits "
                f"{report['max_abs_diff']['logits']:.2e}, probabilities {report['max_abs_diff']['probabilities']:.2e}")
    if examples:
        before, after = scores_on(reference, examples), scores_on(int8, examples)
        agreement = float(np.mean(np.array(reference.predict_labels(texts)) == np.array(int8.predict_labels(texts))))
        for name in [name for name in ("accuracy", "entity_f1") if name in before]:
            report.update({f"{name}_pytorch": before[name], f"{name}_int8": after[name],
                           f"{name}_change": after[name] - before[name]})
            logger.info(f"{name} on {len(examples)} examples: PyTorch {before[name]:.4f}, int8 {after[name]:.4f} "
                        f"(change {after[name] - before[name]:+.4f})")
        report.update(prediction_agreement=agreement, data_examples=len(examples),
                      **({"data_entities": before["gold_entities"]} if "gold_entities" in before else {}))
        logger.info(f"same intent for {agreement:.1%}")
    return report


def export_from_options(options: ExportOptions) -> Dict:
    return export(options.model, onnx=options.onnx or options.quantize, quantized=options.quantize,
                  data=options.data, opset=options.opset, tolerance=options.tolerance, fuse=options.fuse,
                  int8_max_drop=options.int8_max_drop)
