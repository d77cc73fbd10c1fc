"""Unknown intents (issue 33): how well the teacher, the default student and Rasa's DIET tell
messages of the intents they were trained on from messages of intents they never saw, with each
score of rasa_kd/students/unknown.py (max-probability, energy, mahalanobis, nearest).

    .venv/bin/python benchmarks/unknown_intents.py                      # held-out intents, seeds 0 1 2
    .venv/bin/python benchmarks/unknown_intents.py --tasks sara --seeds 0 --diet
    .venv/bin/python benchmarks/unknown_intents.py --tasks --sara-mtod   # only the Sara vs MTOD check

Held-out intents (the protocol; no out-of-scope set needed): per task and seed a quarter of the
intents (seeded; Sara's own out_of_scope always stays known) is removed from the task's training
and dev splits. `rasa-kd pipeline` with its defaults builds teacher and student from the known
training split, as a user would. Test = the known intents' test sentences (known) plus the removed
intents' (unknown). Per model, the confidence Rasa would see: `plain` (the calibrated top
probability, as today) and, per score (each of rasa_kd/students/unknown.py's and sums of two),
the top confidence of the fallback `rasa-kd fallback` fits (the distance scores on the known
training split's sentence vectors, the map to a probability on the known dev split), and `shipped`:
the student package's own fallback and threshold, which `rasa-kd pipeline` fitted on its own dev
share of the known training split (what a user gets):
  AUROC known vs unknown test (and dev AUROC: known vs unknown dev sentences, for choosing), the
  false-positive rate at 95 % true-positive rate and the ECE on known test;
  the operating point: the highest threshold fitted on the known dev split that is expected to cost
  new messages at most 1 point of accuracy (rasa_kd.students.unknown.operating_point); at it, on test, the known-intent
  accuracy (sentences under the threshold count as wrong; without it in brackets) and the share of
  unknown sentences under it (unknown recall).
DIET (--diet, `rasa train nlu` with rasa init's pipeline on the known training split) has its
top confidence only.

Sara vs MTOD-en (--sara-mtod): the default build of benchmarks/refit.py on all of Sara's intents
(benchmarks/work/refit/sara/refit) against 1,000 MTOD English test sentences, the operating point
chosen on Sara dev; `out_of_scope` counts both as a known intent and, when an MTOD sentence lands
there, as caught.

Tasks: sara, rasa-demo, trec50, mtod-en (benchmarks/small_students.py's splits; mtod-en has no
other-domain check: that set is MTOD-en's own test). Builds in
benchmarks/work/unknown-intents/<task>/seed-<S>/ (resumable). Writes
benchmarks/results/unknown_intents.{json,md}.
"""
import argparse
import json
import random
import sys
from pathlib import Path
from statistics import mean
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish, results_so_far  # noqa: E402
from rasa_kd.students.unknown import ACCURACY_COST, log_softmax, operating_point  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "work"
TASKS = ("sara", "rasa-demo", "trec50", "mtod-en")
# the scores compared: each of rasa_kd.students.unknown.SCORES and sums of a logit score and a distance
COMBINED = ("max-probability+nearest", "energy+nearest", "max-probability+mahalanobis", "mahalanobis+nearest")
HELD_OUT_SHARE = 0.25
MODELS = ("teacher", "student", "student-no-outliers", "diet")
FAR_SENTENCES = 300  # MTOD-en test sentences scored as unknown in every held-out run (far off every intent)
ALWAYS_KNOWN = {"out_of_scope"}  # Sara's intent for what the assistant does not handle
TITLE = "# Unknown intents: teacher, default student and DIET (benchmarks/unknown_intents.py)"


class Outputs:
    """One model's logits and sentence vectors for the texts it is asked about."""

    def __init__(self, path: Path):
        from rasa_kd.students import load
        from rasa_kd.teachers.folder import TeacherFolder

        self.is_student = (path / "student.json").exists()
        if self.is_student:
            self.student = load(path, runtime="auto")
            self.labels, self.temperature = self.student.labels, self.student.temperature
        else:
            self.teacher = TeacherFolder(path)
            self.labels, self.temperature = self.teacher.labels, 1.0

    def __call__(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        from rasa_kd.teachers.folder import sentence_vectors

        if self.is_student:  # one message at a time, as Rasa parses (int8 scales activations per batch)
            rows = [self.student.outputs([text]) for text in texts]
            return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
        teacher = self.teacher
        return (teacher.predict_logits(list(texts)),
                sentence_vectors(teacher.classifier, teacher.tokenizer, list(texts), teacher.max_length))


class DietOutputs:
    """A Rasa model's confidences (intent_ranking, nlu_fallback left out) as logits: their logarithms,
    so max-probability is the confidence Rasa reports (no sentence vectors)."""

    def __init__(self, model: Path, labels: Sequence[str]):
        self.model, self.labels, self.temperature = model, list(labels), 1.0

    def __call__(self, texts: Sequence[str]) -> Tuple[np.ndarray, None]:
        from rasa_runner import parse_messages

        index = {label: i for i, label in enumerate(self.labels)}
        rows = np.full((len(texts), len(self.labels)), 1e-9)
        for row, parsed in enumerate(parse_messages(self.model, list(texts))):
            for item in parsed["intent_ranking"]:
                if item["name"] in index:
                    rows[row, index[item["name"]]] = max(item["confidence"], 1e-9)
        return np.log(rows), None


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    truth = np.concatenate([np.ones(len(known)), np.zeros(len(unknown))])
    return round(float(roc_auc_score(truth, np.concatenate([known, unknown]))), 4)


def score_report(scored: Dict[str, np.ndarray], correct: Dict[str, np.ndarray], shipped: bool = False,
                 threshold: Optional[float] = None) -> Dict:
    """For one score of every split's sentences: AUROC and FPR at 95 % TPR known vs unknown test, the
    dev operating point (`shipped`: `threshold`, the package's own) and, at it, the known test accuracy
    and the unknown recall; `dev_auroc` known vs unknown dev when the held-out intents' dev sentences
    were scored."""
    known, unknown = scored["known"], scored["unknown"]
    if not shipped:
        threshold = operating_point(scored["dev"], correct["dev"])
    cut = np.quantile(known, 0.05)  # 95 % of known sentences are at or above it
    kept = known >= (-np.inf if threshold is None else threshold)
    report = {"auroc": auroc(known, unknown), "fpr_at_95_tpr": round(float(np.mean(unknown >= cut)), 4),
              "threshold": threshold, "known_accuracy": round(float(np.mean(correct["known"])), 4),
              "known_accuracy_at_threshold": round(float(np.mean(correct["known"] & kept)), 4),
              "unknown_recall": None if threshold is None else round(float(np.mean(unknown < threshold)), 4)}
    if "unknown-dev" in scored:
        report["dev_auroc"] = auroc(scored["dev"], scored["unknown-dev"])
    if "far" in scored:  # messages of another assistant altogether (MTOD-en)
        report["far_auroc"] = auroc(known, scored["far"])
        report["far_recall"] = None if threshold is None else round(float(np.mean(scored["far"] < threshold)), 4)
    return report


def model_report(outputs, fit: Tuple[List[str], List[str]], texts: Dict[str, List[str]],
                 gold: Dict[str, List[str]], kinds: Sequence[str]) -> Dict:
    """`score_report`s of the confidence Rasa would see, for `outputs` on `texts` (split -> sentences:
    dev, known, unknown, optionally unknown-dev; `gold`: the intents of dev and known): `plain` (the
    calibrated top probability, no fallback) and, per score kind, the top confidence of the fallback
    the product fits (rasa_kd.students.unknown.fit_fallback on `fit`'s texts and intents, mapped on
    dev); for a student package with a fallback also `shipped`, the confidences and threshold it ships
    (fitted by `rasa-kd pipeline` on its own dev share, as Rasa sees them); plus the ECE of each on known
    test and the unknown sentences' predicted intents."""
    from rasa_kd.evaluation.calibration import expected_calibration_error
    from rasa_kd.students.unknown import fit_fallback

    index = {label: i for i, label in enumerate(outputs.labels)}
    labels = {name: np.array([index.get(i, -1) for i in intents]) for name, intents in gold.items()}
    fit_logits, fit_vectors = outputs(fit[0])
    fit_labels = np.array([index.get(i, -1) for i in fit[1]])
    known_rows = fit_labels >= 0
    fit_rows = (fit_logits[known_rows], None if fit_vectors is None else fit_vectors[known_rows],
                fit_labels[known_rows])
    passes = {name: outputs(split) for name, split in texts.items()}
    probabilities = {name: np.exp(log_softmax(logits, outputs.temperature)) for name, (logits, _) in passes.items()}
    correct = {name: probabilities[name].argmax(axis=1) == labels[name] for name in labels}
    predicted, counts = np.unique([outputs.labels[i] for i in probabilities["unknown"].argmax(axis=1)],
                                  return_counts=True)
    report = {"scores": {}, "unknown_predicted": {str(k): int(v) for k, v in zip(predicted, counts)}}
    seen = {"plain": probabilities}
    for kind in kinds:
        fallback = fit_fallback(kind, fit_rows, (*passes["dev"], labels["dev"]), outputs.temperature)
        seen[kind] = {name: fallback.confidences(probabilities[name], *passes[name]) for name in passes}
    package_fallback = getattr(getattr(outputs, "student", None), "fallback", None)
    if package_fallback is not None:
        seen["shipped"] = {name: package_fallback.confidences(probabilities[name], *passes[name]) for name in passes}
    for kind, confidences in seen.items():
        report["scores"][kind] = {**score_report({name: rows.max(axis=1) for name, rows in confidences.items()},
                                                 correct, kind == "shipped",
                                                 package_fallback.threshold if kind == "shipped" else None),
                                  "ece": round(expected_calibration_error(confidences["known"], labels["known"]), 4)}
    return report


def split_of(path: Path) -> Tuple[List[str], List[str]]:
    from rasa_kd.formats.nlu_yaml import read_examples

    examples = read_examples(path)
    return [e.text for e in examples], [e.intent for e in examples]


def held_out_intents(intents: Sequence[str], seed: int) -> List[str]:
    candidates = sorted(set(intents) - ALWAYS_KNOWN)
    return sorted(random.Random(seed).sample(candidates, max(1, round(HELD_OUT_SHARE * len(set(intents))))))


def held_out_files(task: str, seed: int, folder: Path) -> Dict[str, Path]:
    """The task's splits without the seed's held-out intents (train, dev, known) and the held-out
    intents' test and dev sentences (unknown, unknown-dev), written to <folder>/data."""
    from rasa_kd.formats.nlu_yaml import read_examples, write_examples
    from small_students import TaskRun

    build = TaskRun(task, WORK / "small", [], 0)
    build.convert()
    build.prepare()
    splits = {name: read_examples(build.file(name)) for name in ("train", "dev", "test")}
    removed = set(held_out_intents([e.intent for e in splits["train"]], seed))
    files = {name: folder / "data" / f"{name}.yml" for name in ("train", "dev", "known", "unknown", "unknown-dev")}
    chosen = {"train": [e for e in splits["train"] if e.intent not in removed],
              "dev": [e for e in splits["dev"] if e.intent not in removed],
              "known": [e for e in splits["test"] if e.intent not in removed],
              "unknown": [e for e in splits["test"] if e.intent in removed],
              "unknown-dev": [e for e in splits["dev"] if e.intent in removed]}
    for name, examples in chosen.items():
        files[name].parent.mkdir(parents=True, exist_ok=True)
        write_examples(files[name], examples)
    (folder / "data" / "held-out.json").write_text(json.dumps(sorted(removed), indent=1) + "\n")
    return files


def diet_model(train: Path, folder: Path) -> Path:
    import rasa_runner

    model = folder / "diet" / "diet.tar.gz"
    if not model.exists():
        config = folder / "diet" / "config.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(rasa_runner.DIET_CONFIG)
        rasa_runner.train_nlu(config, train, folder / "diet", "diet")
    return model


def without_outliers(options, build: Path) -> Path:
    """The build's student distilled again from its transfer set without the outlier rows (same
    teacher labels, recipe and seed otherwise): what outlier exposure changes. In <build>/no-outliers."""
    import datasets
    import shutil
    from rasa_kd.formats import transfer_set
    from rasa_kd.pipeline import Stages, distil_into, student_options
    from rasa_kd.students import export
    from rasa_kd.students.presets import get_preset

    out, preset = build / "no-outliers", get_preset(options.preset)
    labelled, student, dev = out / "transfer-labelled", out / "student", build / "data" / "dev.yml"
    if not labelled.exists():
        rows = datasets.load_from_disk(str(build / "transfer-labelled"))
        keep = [i for i, source in enumerate(transfer_set.sources_of(rows)) if source != transfer_set.OUTLIER]
        rows.select(keep).flatten_indices().save_to_disk(str(labelled))
        for meta in (transfer_set.LABELS_FILE, transfer_set.TAGS_FILE, transfer_set.LABEL_META_FILE,
                     transfer_set.META_FILE):
            if (build / "transfer-labelled" / meta).exists():
                shutil.copyfile(build / "transfer-labelled" / meta, labelled / meta)
    stages = Stages(out)
    stages.run_options("distil", student_options(options, preset, labelled, dev, student, build / "teacher"),
                       [labelled, dev], student, lambda o: distil_into(o, out))
    stages.run_options("export", export.ExportOptions(model=student, quantize=True, data=dev,
                                                      int8_max_drop=preset.int8_max_drop),
                       [student / "model.safetensors"], student / "model.int8.onnx", export.export_from_options)
    return student


def held_out_run(task: str, seed: int, work: Path, diet: bool, ablate_outliers: bool = False,
                 far_sentences: int = FAR_SENTENCES) -> Dict:
    from rasa_kd.pipeline import PipelineOptions, run_pipeline
    from rasa_kd.students.unknown import SCORES

    folder = work / task / f"seed-{seed}"
    files = held_out_files(task, seed, folder)
    build = folder / "build"
    options = PipelineOptions(nlu=files["train"], test=files["known"], out=build, quiet=True,
                              allow_unknown_labels=True)
    run_pipeline(options)
    splits = {name: split_of(files[name]) for name in ("dev", "known", "unknown", "unknown-dev")}
    train, texts = split_of(files["train"]), {name: split[0] for name, split in splits.items()}
    if far_sentences and task != "mtod-en":  # the other domain is MTOD-en itself
        texts["far"] = split_of(unknown_file(work, far_sentences, seed=1))[0]
    gold = {name: splits[name][1] for name in ("dev", "known")}
    run = {"held_out": json.loads((folder / "data" / "held-out.json").read_text()),
           "sentences": {"train": len(train[0]), **{name: len(split) for name, split in texts.items()}}}
    for name in ("teacher", "student"):
        run[name] = model_report(Outputs(build / name), train, texts, gold, SCORES + COMBINED)
    if ablate_outliers:
        run["student-no-outliers"] = model_report(Outputs(without_outliers(options, build)), train, texts, gold,
                                                  SCORES + COMBINED)
    if diet:
        labels = sorted(set(train[1]))
        run["diet"] = model_report(DietOutputs(diet_model(files["train"], folder), labels), train, texts, gold, ())
    return run


def sara_mtod_run(work: Path, unknown_sentences: int) -> Dict:
    from rasa_kd.students.unknown import SCORES

    build, small = WORK / "refit" / "sara" / "refit", WORK / "small" / "sara" / "data"
    if not (build / "student").exists():
        sys.exit(f"unknown_intents: {build} not found (run benchmarks/refit.py --tasks sara first)")
    unknown = split_of(unknown_file(work, unknown_sentences))[0]
    train, dev, known = (split_of(small / f"{name}.yml") for name in ("train", "dev", "test"))
    run = {"build": str(build), "sentences": {"known": len(known[0]), "unknown": len(unknown)}}
    texts, gold = {"dev": dev[0], "known": known[0], "unknown": unknown}, {"dev": dev[1], "known": known[1]}
    for name in ("teacher", "student"):
        outputs = Outputs(build / name)
        run[name] = model_report(outputs, train, texts, gold, SCORES + COMBINED)
        run[name]["answered"] = answered_separation(outputs, known, unknown)
    diet = WORK / "rasa-train" / "sara" / "models" / "diet.tar.gz"
    if diet.exists():
        outputs = DietOutputs(diet, sorted(set(train[1])))
        run["diet"] = model_report(outputs, train, texts, gold, ())
        run["diet"]["answered"] = answered_separation(outputs, known, unknown)
    for name in ("teacher", "student", "diet"):
        if name in run:
            run[name]["unknown_as_out_of_scope"] = round(
                run[name]["unknown_predicted"].get("out_of_scope", 0) / len(unknown), 4)
    return run


def answered_separation(outputs, known: Tuple[List[str], List[str]], unknown: List[str]) -> Dict:
    """Sara's assistant answers a message unless it lands in out_of_scope: how well the top
    confidence of an answer (0 for out_of_scope) tells Sara's in-scope test sentences from the unknown
    ones."""
    from sklearn.metrics import roc_auc_score

    in_scope = [text for text, intent in zip(*known) if intent not in ALWAYS_KNOWN]
    out_of_scope = [outputs.labels.index(label) for label in ALWAYS_KNOWN if label in outputs.labels]
    scores = []
    for texts in (in_scope, unknown):
        probabilities = np.exp(log_softmax(outputs(texts)[0], outputs.temperature))
        answered = ~np.isin(probabilities.argmax(axis=1), out_of_scope)
        scores.append(np.where(answered, probabilities.max(axis=1), 0.0))
    truth = np.concatenate([np.ones(len(scores[0])), np.zeros(len(scores[1]))])
    return {"in_scope": len(in_scope), "auroc": round(float(roc_auc_score(truth, np.concatenate(scores))), 4),
            "unknown_answered": round(float(np.mean(scores[1] > 0)), 4)}


def unknown_file(work: Path, n: int, seed: int = 0) -> Path:
    from rasa_kd.formats.nlu_yaml import read_examples, write_examples
    from rasa_kd.nlu_data.convert import convert

    path = work / f"mtod-en-unknown-{n}{'' if seed == 0 else f'-seed-{seed}'}.yml"
    if not path.exists():
        converted = WORK / "scale" / "converted"
        if not (converted / "test.yml").exists():
            converted = work / "mtod-en"
            convert("mtod", SHARED / "mtod", converted, force=True, lang="en")
        examples = read_examples(converted / "test.yml")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_examples(path, random.Random(seed).sample(examples, min(n, len(examples))))
    return path


def mean_rows(runs: List[Dict]) -> List[str]:
    """One row per model and score: the means over every task and seed run."""
    rows = []
    for model in MODELS:
        kinds = next((r[model]["scores"] for r in runs if model in r), {})
        for kind in kinds:
            reports = [r[model]["scores"][kind] for r in runs if kind in r.get(model, {}).get("scores", {})]
            recall = [r["unknown_recall"] for r in reports if r["unknown_recall"] is not None]
            dev_auroc = [r["dev_auroc"] for r in reports if "dev_auroc" in r]
            far = [r for r in reports if "far_auroc" in r]
            far_cells = (f"{mean(r['far_auroc'] for r in far):.4f} ({len(far)}) | "
                         f"{mean(r['far_recall'] or 0 for r in far):.1%}") if far else " | "
            rows.append(f"| {model} | {kind} | {len(reports)} | {mean(dev_auroc) if dev_auroc else 0:.4f} | "
                        f"{mean(r['auroc'] for r in reports):.4f} | "
                        f"{mean(r['fpr_at_95_tpr'] for r in reports):.4f} | {mean(r['ece'] for r in reports):.4f} | "
                        f"{mean(r['known_accuracy_at_threshold'] for r in reports):.4f} "
                        f"({mean(r['known_accuracy'] for r in reports):.4f}) | "
                        f"{mean(recall) if recall else 0:.1%} | {far_cells} |")
    return rows


def per_task_rows(tasks: Dict) -> List[str]:
    from rasa_kd.students.unknown import SCORES

    rows = []
    for task, seeds in tasks.items():
        for seed, run in sorted(seeds.items()):
            cells = [f"{run['teacher']['scores']['plain']['auroc']:.3f}",
                     *(f"{run['student']['scores'][k]['auroc']:.3f}" for k in ("plain",) + SCORES + COMBINED)]
            rows.append(f"| {task} | {seed} | {len(run['held_out'])} | {run['sentences']['known']} / "
                        f"{run['sentences']['unknown']} | " + " | ".join(cells) + " |")
    return rows


def markdown(result: Dict) -> str:
    from rasa_kd.students.unknown import SCORES

    runs = [run for seeds in result["tasks"].values() for run in seeds.values()]
    header = ("| model | score | runs | dev AUROC | AUROC | FPR at 95 % TPR | ECE | "
              "known accuracy at threshold (none) | unknown recall | far AUROC (runs) | far recall |")
    lines = [TITLE, "",
             "Held-out intents: per task and seed a quarter of the intents is removed from training and dev; "
             "`rasa-kd pipeline` (defaults) builds teacher and student from the rest; test = known intents' test + "
             "the removed intents' test. Threshold: the highest one fitted on the known dev split that is expected "
             f"to cost new messages at most {ACCURACY_COST:.0%} of known-intent accuracy; `shipped`: the student "
             "package's own fallback and threshold (fitted by `rasa-kd pipeline` on its judge share).", "",
             "Far: "
             f"{FAR_SENTENCES} MTOD-en test sentences (another assistant's messages) as the unknown ones instead. "
             "student-no-outliers: the same student distilled without the outlier-exposure sentences "
             "(--ablate-outliers).", "",
             "## Means over tasks and seeds", "", header, "|---|---|---|---|---|---|---|---|---|---|---|",
             *mean_rows(runs), "",
             "## AUROC per run", "",
             "| task | seed | held out | known / unknown test | " + " | ".join(
                 ["teacher plain", *(f"student {k}" for k in ("plain",) + SCORES + COMBINED)]) + " |",
             "|---|---|---|---|" + "---|" * (2 + len(SCORES + COMBINED)), *per_task_rows(result["tasks"])]
    check = result.get("sara_mtod")
    if check:
        lines += ["", "## Sara vs MTOD-en", "",
                  f"Known: Sara test ({check['sentences']['known']} sentences), unknown: "
                  f"{check['sentences']['unknown']} MTOD English test sentences; the default Sara build of "
                  "benchmarks/refit.py.", "",
                  "| model | score | AUROC | FPR at 95 % TPR | known accuracy at threshold (none) | unknown recall | "
                  "unknown as out_of_scope |", "|---|---|---|---|---|---|---|"]
        for model in ("teacher", "student", "diet"):
            for kind, r in check.get(model, {}).get("scores", {}).items():
                lines.append(f"| {model} | {kind} | {r['auroc']:.4f} | {r['fpr_at_95_tpr']:.4f} | "
                             f"{r['known_accuracy_at_threshold']:.4f} ({r['known_accuracy']:.4f}) | "
                             f"{r['unknown_recall'] or 0:.1%} | {check[model]['unknown_as_out_of_scope']:.1%} |")
        lines += ["", "Answered or not: Sara's assistant answers unless the top intent is out_of_scope. Scoring an "
                      "answer by its top probability (out_of_scope: 0), in-scope Sara test sentences vs MTOD:", "",
                  "| model | in-scope known | AUROC | MTOD sentences answered |", "|---|---|---|---|"]
        for model in ("teacher", "student", "diet"):
            if model in check:
                a = check[model]["answered"]
                lines.append(f"| {model} | {a['in_scope']} | {a['auroc']:.4f} | {a['unknown_answered']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--diet", action="store_true", help="also train and score DIET (slow: ~15 min on Sara)")
    parser.add_argument("--ablate-outliers", action="store_true",
                        help="also distil each student again without the outlier sentences (~3 min per run)")
    parser.add_argument("--sara-mtod", action="store_true", help="also run the Sara vs MTOD-en check")
    parser.add_argument("--unknown-sentences", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=WORK / "unknown-intents")
    args = parser.parse_args(argv)
    from rasa_kd.cli import quiet_environment

    quiet_environment()
    result = results_so_far("unknown_intents", "benchmarks/unknown_intents.py")
    if "tasks" not in result or "models" in result:  # the earlier Sara-only layout
        result = {key: result[key] for key in ("benchmark", "machine", "versions")} | {"tasks": {}}
    for task in args.tasks:
        for seed in args.seeds:
            print(f"== {task} seed {seed}", flush=True)
            run = held_out_run(task, seed, args.work, args.diet, args.ablate_outliers)
            result["tasks"].setdefault(task, {})[str(seed)] = run
            print(json.dumps({m: {k: s["auroc"] for k, s in run[m]["scores"].items()}
                              for m in MODELS if m in run}),
                  flush=True)
            publish("unknown_intents", result, markdown(result))
    if args.sara_mtod:
        result["sara_mtod"] = sara_mtod_run(args.work, args.unknown_sentences)
        publish("unknown_intents", result, markdown(result))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
