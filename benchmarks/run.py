"""One benchmark task, raw data -> the reference table: teacher, BiLSTM and small-BERT students,
Rasa's default DIET pipeline and the student inside Rasa, on the same converted data.

    .venv/bin/python benchmarks/run.py --task sara --budget quick

Stages (each skipped when its recorded arguments and inputs are unchanged, so a re-run of a
finished task costs seconds and an interrupted one resumes):
  convert     ../shared/data/<source> -> WORK/converted (rasa-kd convert)
  prepare     WORK/<budget>/data: train.yml (capped for quick budgets) and select.yml, the
              model-selection set (the task's own dev split, or 10 % of train when dev is
              a reported set); reported sets are never used for training or selection
  teacher     rasa-kd teacher on train.yml, best epoch on select.yml
  augment     rasa-kd augment --method rules (select and reported sets excluded)
  label       rasa-kd label
  distil-*    rasa-kd distil: bilstm, bert; export-* rasa-kd export --onnx
  evaluate-*  rasa-kd evaluate of teacher and students (ONNX) on every reported set
  rasa-*      `rasa train nlu` / `rasa test nlu` / in-process parse latency of Rasa's
              default pipeline (rasa init: CountVectors word + char, DIET) and of the
              student pipeline (WhitespaceTokenizer + StudentIntentClassifier)

Writes benchmarks/results/<task>.json (one entry per budget, `<budget>-<teacher>` for a
teacher other than minilm: metrics, sizes, latencies,
training times, versions, seed, the exact recipe, targets). `benchmarks/report.py`
turns the results into benchmarks/RESULTS.md and plots.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
for _key, _value in {"RASA_TELEMETRY_ENABLED": "false", "USE_TF": "0", "TRANSFORMERS_NO_TF": "1",
                     "TF_CPP_MIN_LOG_LEVEL": "3"}.items():
    os.environ.setdefault(_key, _value)

from rasa_kd.pipeline import Stages, input_fingerprint  # noqa: E402  (light: no torch, no Rasa)


@dataclass(frozen=True)
class Task:
    dataset: str  # `rasa-kd convert` dataset name
    source: str  # folder under ../shared/data
    reports: Tuple[str, ...]  # converted splits that are scored; the first is the headline
    metric: str  # headline metric: accuracy, micro_f1 or mcc
    select: Optional[str] = None  # converted split for model selection; None: 10 % of train
    options: Dict = field(default_factory=dict)  # convert options
    english: bool = True  # GloVe word vectors apply
    language: Optional[str] = None  # Rasa's `language:` key, for the teacher choice (None: read from the data)
    target: Tuple[str, float] = ("ratio", 0.99)  # best student vs teacher on the headline metric
    reference: Dict = field(default_factory=dict)  # Sučík 2020 (BERT-large teacher), headline metric
    full: Dict = field(default_factory=dict)  # Budget values over the full budget's, for large tasks
    train: str = "train"  # converted split the systems train on


TASKS = {
    "sara": Task("sara", "sara", ("test",), "micro_f1", select="dev", target=("ratio", 1.00),
                 reference={"teacher": 0.883, "best student": 0.864}),
    # 67k training phrases: a 200k transfer set (Sučík 2020 used ~800k) and fewer epochs over it; 100 DIET
    # epochs would take ~10 h here (41 min for TREC's 4.8k), so DIET is capped at 10 (~1 h)
    "sst2": Task("sst2", "sst2", ("dev", "test"), "accuracy",
                 reference={"teacher": 0.915, "bilstm": 0.912, "bert": 0.893},
                 full={"teacher_epochs": 3, "transfer_size": 200_000, "bilstm_epochs": 2, "bert_epochs": 1,
                       "diet_epochs": 10}),
    "cola": Task("cola", "cola", ("dev", "dev_in_domain", "dev_out_of_domain"), "mcc", target=("ratio", 0.80),
                 reference={"teacher": 0.599, "bilstm": 0.442, "bert": 0.450}),
    "trec": Task("trec", "trec", ("test",), "accuracy", options={"labels": "coarse"}),
    "trec50": Task("trec", "trec", ("test",), "accuracy", options={"labels": "fine"}),
    "mtod-es": Task("mtod", "mtod", ("test",), "accuracy", select="dev", options={"lang": "es"}, english=False,
                    language="es"),
    "mtod-th": Task("mtod", "mtod", ("test",), "accuracy", select="dev", options={"lang": "th"}, english=False,
                    language="th"),
    # ../shared/data has no MTOD English train file: the eval file (3,490 unique) is trained on, 10 % selects
    "mtod-en": Task("mtod", "mtod", ("test",), "accuracy", options={"lang": "en"}, language="en", train="dev"),
}
# Sučík 2020 latencies (ms/example, CPU): LSTM ~0.7-1, BERT_S ~11, BERT-large teacher ~750.
REFERENCE_LATENCY_MS = {"bilstm": "0.7-1", "bert": "11", "teacher": "750 (BERT-large)"}


@dataclass(frozen=True)
class Budget:
    train_cap: Optional[int]  # training examples kept (stratified), None: all
    teacher_epochs: float
    transfer_size: Optional[int]  # None: the default preset's size rule, as `rasa-kd pipeline` makes it
    bilstm_epochs: Optional[float]  # None: the default preset's (at most 8, stops at the dev plateau)
    bert_epochs: float
    diet_epochs: int
    latency_examples: int = 200
    bilstm: Dict = field(default_factory=dict)  # DistilOptions values over the default preset's
    bert: Dict = field(default_factory=dict)  # DistilOptions values for the small BERT
    teacher: Dict = field(default_factory=dict)  # TeacherOptions values


BUDGETS = {
    "quick": Budget(train_cap=600, teacher_epochs=3, transfer_size=5000, bilstm_epochs=5, bert_epochs=3,
                    diet_epochs=100),
    # The product's defaults (`rasa-kd pipeline`): the default preset's transfer-set size (10x train,
    # 10k-40k) and BiLSTM; BERT at the teacher's width, 3 of its layers, 3 epochs (tuned on Sara dev by
    # benchmarks/distil.py, benchmarks/results/distil_sara.md).
    "full": Budget(train_cap=None, teacher_epochs=6, transfer_size=None, bilstm_epochs=None, bert_epochs=3,
                   diet_epochs=100, bert={"hidden_size": 384, "heads": 12, "intermediate": 1536, "layers": 3,
                                          "init_from_teacher": True}),
    # Tiny models and one epoch, for the test suite (`make test`): exercises every stage in minutes.
    "smoke": Budget(train_cap=None, teacher_epochs=1, transfer_size=200, bilstm_epochs=1, bert_epochs=1,
                    diet_epochs=1, latency_examples=10, bilstm={"hidden_size": 16, "fc_size": 16},
                    bert={"hidden_size": 16, "heads": 2, "layers": 1, "intermediate": 32},
                    teacher={"batch_size": 8}),
}
STUDENTS = ("bilstm", "bert")
SYSTEMS = ("teacher", "bilstm", "bert", "diet", "student_in_rasa")


def task_budget(task: Task, name: str) -> Budget:
    """The named budget; the full one with the task's own values laid over it."""
    import dataclasses

    budget = BUDGETS[name]
    return dataclasses.replace(budget, **task.full) if name == "full" else budget


def bilstm_options(task: Task, vectors: Optional[str]) -> Dict:
    """The default preset's BiLSTM (pruned wordpieces, rasa_kd.students.presets); `--vectors FILE|glove50` picks
    the word-vector BiLSTM instead (English tasks)."""
    if task.english and vectors not in (None, "none"):
        return {"vocab": "words", "vectors": vectors}
    return {}


# ---------------------------------------------------------------- data


def prepare_data(converted: Path, out: Path, task: Task, budget: Budget, seed: int) -> None:
    """train.yml (capped) and select.yml from the converted folder, written all-or-nothing."""
    from rasa_kd.formats.nlu_yaml import read_examples, write_examples
    from rasa_kd.formats.outputs import atomic_output_dir
    from rasa_kd.nlu_data.split import stratified_split

    train = read_examples(converted / f"{task.train}.yml")
    if task.select:
        select = read_examples(converted / f"{task.select}.yml")
    else:
        train, select = stratified_split(train, 0.1, seed)
    if budget.train_cap and len(train) > budget.train_cap:
        train, _ = stratified_split(train, 1 - budget.train_cap / len(train), seed + 1)
    with atomic_output_dir(out, force=True) as folder:
        write_examples(folder / "train.yml", train)
        write_examples(folder / "select.yml", select)
        (folder / "counts.json").write_text(json.dumps({"train": len(train), "select": len(select)}) + "\n")


def data_counts(converted: Path, data: Path) -> Dict:
    """Rows read and unique examples (after Rasa's dedupe) per converted split, and what was used."""
    conversion = converted / "conversion.json"
    splits = json.loads(conversion.read_text())["splits"] if conversion.exists() else []
    counts = {s["file"][:-4]: {"rows": s["rows_read"], "unique": s["unique_after_rasa"], "intents": s["intents"]}
              for s in splits}
    counts["used"] = json.loads((data / "counts.json").read_text())
    return counts


# ---------------------------------------------------------------- the run


CHOSEN_BY_THE_DATA = "chosen by the data"  # the recipe's teacher_model without --teacher-model


def entry_key(budget: str, teacher_model: Optional[str]) -> str:
    """The results-file key and work folder of a run: the budget, with the teacher when one is
    named, so that a run with another teacher stands beside the default one."""
    if not teacher_model or teacher_model == CHOSEN_BY_THE_DATA:
        return budget
    name = Path(teacher_model).name or teacher_model  # a folder or hub id: its last part
    return f"{budget}-{re.sub(r'[^A-Za-z0-9._]+', '-', name)}"


class Run:
    def __init__(self, args):
        self.args, self.task, self.budget = args, args.task_spec, task_budget(args.task_spec, args.budget)
        self.root = args.work / args.task
        self.converted = args.data or self.root / "converted"
        self.key = entry_key(args.budget, args.teacher_model)
        self.work = self.root / self.key
        self.data = self.work / "data"
        self.stages = Stages(self.work)
        self.reports = {name: self.converted / f"{name}.yml" for name in self.task.reports}
        self.headline = self.task.reports[0]

    # ---- rasa-kd stages

    def convert(self) -> None:
        if self.args.data:
            return
        from rasa_kd.nlu_data.convert import convert

        source = self.args.source or SHARED / self.task.source
        # recorded at the task level: every budget shares the converted folder and must not rewrite it
        Stages(self.root).run("convert", {"dataset": self.task.dataset, "source": str(source), **self.task.options},
                              [source], self.converted,
                              lambda: convert(self.task.dataset, source, self.converted, force=True,
                                              **self.task.options))

    def prepare(self) -> None:
        self.stages.run("prepare", {"budget": asdict(self.budget), "seed": self.args.seed},
                        [self.converted], self.data,
                        lambda: prepare_data(self.converted, self.data, self.task, self.budget, self.args.seed))

    def teachers(self) -> List[Path]:
        """The teacher folder(s): --teacher-model, else the data's choice as `rasa-kd pipeline` makes it."""
        from rasa_kd.formats.nlu_yaml import read_examples
        from rasa_kd.teachers import choice, fine_tune

        texts = [e.text for e in read_examples(self.data / "train.yml")]
        override = [self.args.teacher_model] if self.args.teacher_model else None
        self.picked, self.picked_texts = choice.choose_teachers(texts, self.task.language, override), texts
        folders = ([self.work / "teacher"] if len(self.picked.teachers) == 1
                   else [self.work / f"teacher-{i}" for i in range(len(self.picked.teachers))])
        for backbone, out in zip(self.picked.teachers, folders):
            options = fine_tune.TeacherOptions(train=self.data / "train.yml", dev=self.data / "select.yml",
                                             model=backbone, epochs=self.budget.teacher_epochs,
                                             seed=self.args.seed, out=out, **self.budget.teacher)
            self.stages.run_options(out.name, options, [self.data], out, fine_tune.train_from_options)
        return folders

    def transfer(self, teachers: List[Path]) -> Path:
        from rasa_kd.transfer import augment, label

        transfer, labelled = self.work / "transfer", self.work / "transfer-labelled"
        vectors = {"vectors": self.args.vectors} if self.args.vectors not in (None, "none") else {}
        options = augment.AugmentOptions(method="rules", train=self.data / "train.yml", out=transfer,
                                         exclude=[self.data / "select.yml", *self.reports.values()],
                                         seed=self.args.seed, size=self.transfer_size(), language=self.task.language,
                                         segmenter=augment.segmenter_for(self.picked_texts, self.picked.teachers[0]),
                                         **vectors)
        self.stages.run_options("augment", options, [self.data], transfer, augment.augment)
        self.stages.run_options("label", label.LabelOptions(teacher=teachers, transfer=transfer, out=labelled),
                                [transfer, *teachers], labelled, label.label)
        return labelled

    def transfer_size(self) -> int:
        from rasa_kd.students.presets import DEFAULT_PRESET, get_preset

        trained_on = json.loads((self.data / "counts.json").read_text())["train"]
        return self.budget.transfer_size or get_preset(DEFAULT_PRESET).transfer_size(trained_on)

    def student(self, kind: str, labelled: Path) -> Path:
        from rasa_kd.students import export
        from rasa_kd.pipeline import distil_into
        from rasa_kd.students.presets import distil_options

        out = self.work / f"student-{kind}"
        values = ({**bilstm_options(self.task, self.args.vectors), **self.budget.bilstm} if kind == "bilstm"
                  else {"student": "bert", **self.budget.bert})
        epochs = getattr(self.budget, f"{kind}_epochs")
        if epochs is not None:
            values["epochs"] = epochs
        options = distil_options(transfer=labelled, dev=self.data / "select.yml", out=out, seed=self.args.seed,
                                 **values)
        self.stages.run_options(f"distil-{kind}", options, [labelled, self.data], out,
                                lambda o: distil_into(o, self.work))
        self.stages.run_options(f"export-{kind}", export.ExportOptions(model=out, quantize=True,
                                                                       data=self.data / "select.yml"),
                                [out / "model.safetensors"], out / "model.int8.onnx", export.export_from_options)
        return out

    def evaluate(self, name: str, model: Path) -> Dict:
        """Scores of the deployed runtime on every reported set; speed on the headline set."""
        from rasa_kd.evaluation import evaluate

        results = {}
        for report, path in self.reports.items():
            out = self.work / "metrics" / f"{name}-{report}.json"
            speed = report == self.headline
            description = {"model": str(model), "data": str(path), "runtime": "auto", "speed": speed,
                           "latency_examples": self.budget.latency_examples}
            self.stages.run(f"evaluate-{name}-{report}", description, [model, path], out,
                            lambda p=path, o=out, s=speed: evaluate.evaluate(
                                model, p, o, latency_examples=self.budget.latency_examples, speed=s, memory=s))
            results[report] = json.loads(out.read_text())
        return results

    # ---- Rasa stages

    def rasa_system(self, name: str, config_text: str, inputs: List[Path]) -> Dict:
        """rasa train nlu, rasa test nlu on each reported set, in-process parse latency."""
        import rasa_runner
        from rasa_kd.formats.nlu_yaml import read_examples

        folder = self.work / "rasa"
        folder.mkdir(parents=True, exist_ok=True)
        model, train_seconds = self.rasa_model(name, config_text, inputs)
        result = {"model": str(model), "size_bytes": model.stat().st_size, "train_seconds": train_seconds,
                  "scores": {}, "rasa_report": {}}
        for report, path in self.reports.items():
            out = folder / f"{name}-test-{report}.json"
            self.stages.run(f"rasa-test-{name}-{report}", {"rasa": "test nlu", "model": str(model), "nlu": str(path)},
                            [model, path], out, lambda o=out, p=path, r=report: o.write_text(json.dumps(
                                rasa_runner.test_nlu(model, p, folder / f"{name}-test-{r}"), indent=1)))
            tested = json.loads(out.read_text())
            result["scores"][report] = tested.pop("scores")
            result["rasa_report"][report] = tested
        latency = folder / f"{name}-latency.json"
        texts = [e.text for e in read_examples(self.reports[self.headline])][: max(self.budget.latency_examples, 1)]
        self.stages.run(f"rasa-latency-{name}", {"parse_latency": str(model), "messages": len(texts)}, [model],
                        latency, lambda: latency.write_text(json.dumps(rasa_runner.parse_latency(model, texts))))
        result["parse_latency"] = json.loads(latency.read_text())
        result["latency_ms_batch1"] = result["parse_latency"]["median_ms"]
        return result

    def rasa_model(self, name: str, config_text: str, inputs: List[Path]) -> Tuple[Path, Optional[float]]:
        """`rasa train nlu`, in a folder named by content: the model depends only on the config,
        train.yml and `inputs`, so budgets with the same training data (Sara quick and full) share it."""
        import rasa_runner
        train = self.data / "train.yml"
        digest = hashlib.sha1(json.dumps([config_text, input_fingerprint(inputs)]).encode() + train.read_bytes())
        folder = self.root / "rasa-models" / f"{name}-{digest.hexdigest()[:12]}"
        model, config = folder / f"{name}.tar.gz", folder / "config.yml"

        def train_model() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            config.write_text(config_text)
            rasa_runner.train_nlu(config, train, folder, name)

        stages = Stages(folder)
        stages.run(f"rasa-train-{name}", {"rasa": "train nlu", "config": config.name, "nlu": "train.yml"},
                   [], model, train_model)
        return model, stages.seconds(f"rasa-train-{name}")

    # ---- everything

    def run(self) -> Dict:
        """The systems this invocation runs (--systems), scored; the others carried from the earlier
        entry of the same data and recipe, where there is one."""
        import rasa_runner

        started = time.time()
        self.convert()
        self.prepare()
        chosen, systems = self.args.systems, {}
        if set(chosen) - {"diet"}:  # every system but DIET stems from the teacher
            teachers = self.teachers()
            needed = [kind for kind in STUDENTS if kind in chosen or (kind == "bilstm" and "student_in_rasa" in chosen)]
            if "bert" in needed:
                self.check_bert_teacher(teachers[0])
            labelled = self.transfer(teachers)
            students = {kind: self.student(kind, labelled) for kind in needed}
            if "teacher" in chosen:  # an ensemble's first teacher (the students' vocabulary comes from it)
                systems["teacher"] = self.model_system("teacher", teachers[0])
                systems["teacher"]["chosen"] = self.picked.record()
            for kind in STUDENTS:
                if kind in chosen:
                    systems[kind] = self.model_system(kind, students[kind])
        if "diet" in chosen:
            systems["diet"] = self.rasa_system("diet", diet_config(self.budget.diet_epochs), [])
        if "student_in_rasa" in chosen:
            systems["student_in_rasa"] = self.rasa_system(
                "student", rasa_runner.student_config(students["bilstm"].resolve()), [students["bilstm"]])
            systems["student_in_rasa"]["student"] = "bilstm"
        return self.result(systems, time.time() - started)

    def check_bert_teacher(self, teacher: Path) -> None:
        """The budget's small BERT copies the teacher's layers: say so before labelling when it cannot."""
        from rasa_kd.errors import UserError

        if not self.budget.bert.get("init_from_teacher"):
            return
        model_type = json.loads((teacher / "config.json").read_text()).get("model_type")
        if model_type != "bert":
            raise UserError(f"the {self.args.budget} budget's small BERT starts from the teacher's layers, which needs "
                            f"a BERT teacher ({teacher.name} is {model_type}): leave bert out of --systems")

    def earlier_entry(self) -> Optional[Dict]:
        """This budget's entry in the results file when it was made from the same prepared data
        and recipe (so its systems can stand beside this run's), else None."""
        path = self.args.results / f"{self.args.task}.json"
        entry = json.loads(path.read_text()).get(self.key) if path.exists() else None
        if not entry or entry.get("data_digest") != self.data_digest() or entry.get("recipe") != self.recipe():
            return None
        return entry

    def data_digest(self) -> str:
        """SHA-1 over the training, selection and reported files' contents (not their paths)."""
        from rasa_kd.formats.digests import file_digest

        files = [self.data / "train.yml", self.data / "select.yml", *self.reports.values()]
        return hashlib.sha1("".join(file_digest(f) for f in files).encode()).hexdigest()

    def recipe(self) -> Dict:
        recipe = {"budget": asdict(self.budget), "teacher_model": self.args.teacher_model or CHOSEN_BY_THE_DATA,
                  "augment": "rules", "bilstm": bilstm_options(self.task, self.args.vectors),
                  "student_in_rasa": "bilstm (deployed runtime)", "diet_config": diet_config(self.budget.diet_epochs),
                  "select": self.task.select or "10 % of train (stratified)"}
        return json.loads(json.dumps(recipe))  # as the results file holds it (tuples become lists)

    def model_system(self, name: str, model: Path) -> Dict:
        metrics = self.evaluate(name, model)
        head = metrics[self.headline]
        system = {"model": str(model), "runtime": head["kind"],
                  "scores": {report: m["scores"] for report, m in metrics.items()},
                  "parameters": head["parameters"], "size_bytes": head["size_bytes"],
                  "latency_ms_batch1": head["latency_ms_batch1"], "sentences_per_second": head["sentences_per_second"],
                  "train_seconds": self.stages.seconds(name if name == "teacher" else f"distil-{name}")}
        if name == "teacher":
            from rasa_kd.teachers.folder import METRICS_FILE

            fine_tuning = json.loads((model / METRICS_FILE).read_text())
            system["fine_tuning"] = {"lr": fine_tuning["settings"]["lr"], **{
                key: fine_tuning.get(key) for key in ("lr_retried_from", "best_epoch", "history")}}
        elif (model / "student.json").exists():
            recipe = json.loads((model / "student.json").read_text())["recipe"]
            system.update(dev_history=recipe.get("dev_history", []), best_epoch=recipe.get("best_epoch"),
                          recipe=recipe)
        return system

    def result(self, ran: Dict, seconds: float) -> Dict:
        """The budget's entry: the systems run now, beside those carried from the earlier entry."""
        earlier = self.earlier_entry() or {}
        carried = {name: system for name, system in earlier.get("systems", {}).items() if name not in ran}
        systems = {name: ran.get(name, carried.get(name)) for name in SYSTEMS if name in ran or name in carried}
        stage_seconds = dict(earlier.get("stage_seconds", {})) if carried else {}
        stage_seconds.update({name: self.stages.seconds(name) for name in self.stages.timings})
        # Rasa models are recorded in their content-named folders, outside this budget's stages
        for name, stage in (("diet", "rasa-train-diet"), ("student_in_rasa", "rasa-train-student")):
            if name in ran:
                stage_seconds[stage] = ran[name]["train_seconds"]
        if not self.args.data:
            stage_seconds["convert"] = Stages(self.root).seconds("convert")
        entry = {
            "benchmark": "rasa-kd benchmarks/run.py",
            "task": self.args.task, "budget": self.args.budget, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": self.args.seed, "machine": machine(), "versions": versions(),
            "recipe": self.recipe(), "data_digest": self.data_digest(),
            "data": data_counts(self.converted, self.data),
            "headline": {"split": self.headline, "metric": self.task.metric},
            "reference": {"scores": self.task.reference, "latency_ms": REFERENCE_LATENCY_MS,
                          "source": "Sučík 2020, BERT-large teacher"},
            "systems": systems,
            "targets": targets(self.task, systems, self.headline),
            "stage_seconds": dict(sorted(stage_seconds.items())),
            "stages_total_seconds": round(sum(s or 0 for s in stage_seconds.values()), 1),
            "run_seconds": round(seconds, 1),
        }
        if carried:
            entry["carried"] = {"systems": list(carried), "from_run": earlier["created"],
                                "machine": earlier["machine"], "versions": earlier["versions"]}
        if len(systems) < len(SYSTEMS):
            entry["not_run"] = [name for name in SYSTEMS if name not in systems]
        return entry


def diet_config(epochs: int) -> str:
    import rasa_runner

    return rasa_runner.DIET_CONFIG.replace("epochs: 100", f"epochs: {epochs}")


def headline_score(system: Dict, split: str, metric: str) -> float:
    return system["scores"][split][metric]


def targets(task: Task, systems: Dict, split: str) -> List[Dict]:
    """One row per target; a target whose systems did not run has value and met None."""
    metric = task.metric
    students = [kind for kind in STUDENTS if kind in systems]
    rows = []
    if "teacher" in systems and students:
        teacher = headline_score(systems["teacher"], split, metric)
        best = max(students, key=lambda kind: headline_score(systems[kind], split, metric))
        ratio = headline_score(systems[best], split, metric) / teacher if teacher else float("nan")
        rows.append({"name": f"best student ({best}) / teacher {metric} >= {task.target[1]:.2f}",
                     "value": round(ratio, 4), "met": bool(ratio >= task.target[1])})
    else:
        rows.append(not_run(f"best student / teacher {metric} >= {task.target[1]:.2f}"))
    if task.dataset == "sara":
        if students and "diet" in systems:
            best = max(students, key=lambda kind: headline_score(systems[kind], split, metric))
            margin = headline_score(systems[best], split, metric) - headline_score(systems["diet"], split, metric)
            rows.append({"name": f"best student ({best}) >= DIET + 0.05 {metric}", "value": round(margin, 4),
                         "met": bool(margin >= 0.05)})
        else:
            rows.append(not_run(f"best student >= DIET + 0.05 {metric}"))
    name = "student-in-Rasa parse latency / DIET pipeline's <= 0.5"
    if "student_in_rasa" in systems and "diet" in systems:
        latency = systems["student_in_rasa"]["latency_ms_batch1"] / systems["diet"]["latency_ms_batch1"]
        rows.append({"name": name, "value": round(latency, 4), "met": bool(latency <= 0.5)})
    else:
        rows.append(not_run(name))
    return rows


def not_run(name: str) -> Dict:
    return {"name": name, "value": None, "met": None}


def machine() -> Dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "gpu": gpu, "platform": platform.platform()}


def versions() -> Dict:
    from importlib.metadata import version

    packages = ("rasa", "torch", "transformers", "datasets", "onnxruntime", "tensorflow", "scikit-learn")
    return {"python": platform.python_version(), **{name: version(name) for name in packages}}


def repo_relative(value):
    """`value` (JSON-able) with this checkout's absolute paths written relative to it, in every
    string: a results file says `benchmarks/work/sara/...`, not where the machine kept the repo."""
    prefix = str(ROOT) + "/"
    if isinstance(value, str):
        return value.replace(prefix, "")
    if isinstance(value, dict):
        return {key: repo_relative(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [repo_relative(item) for item in value]
    return value


def results_json(content, indent: int = 1) -> str:
    """The text of a results file: repo-relative paths, UTF-8 as is, a final newline."""
    return json.dumps(repo_relative(content), indent=indent, ensure_ascii=False) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """A run killed mid-write keeps the last complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write_result(results_dir: Path, result: Dict) -> Path:
    """benchmarks/results/<task>.json holds one entry per budget (and non-default teacher); replace
    this run's atomically."""
    path = results_dir / f"{result['task']}.json"
    entries = json.loads(path.read_text()) if path.exists() else {}
    entries[entry_key(result["budget"], result["recipe"]["teacher_model"])] = result
    write_atomically(path, results_json(entries))
    return path


def results_so_far(name: str, benchmark: str) -> Dict:
    """benchmarks/results/<name>.json as earlier runs left it (tasks not re-run keep their
    entries), stamped with this run's script, machine and package versions."""
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    results = json.loads(path.read_text()) if path.exists() else {"tasks": {}}
    results.update(benchmark=benchmark, machine=machine(), versions=versions())
    return results


def publish(name: str, result: Dict, markdown: str) -> None:
    """benchmarks/results/<name>.json (stamped with its creation time) and <name>.md; the markdown is printed."""
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = ROOT / "benchmarks" / "results"
    write_atomically(results / f"{name}.json", results_json(result))
    write_atomically(results / f"{name}.md", repo_relative(markdown))
    print(markdown)


TARGET_STATES = {True: "met", False: "NOT met", None: "not run"}


def print_summary(result: Dict) -> None:
    split, metric = result["headline"]["split"], result["headline"]["metric"]
    print(f"\n{result['task']} ({result['budget']}): {metric} on {split}")
    print(f"| system | {metric} | ms/example | size MB |\n|---|---|---|---|")
    for name, system in result["systems"].items():
        print(f"| {name} | {headline_score(system, split, metric):.4f} | {system['latency_ms_batch1']:.2f} | "
              f"{system['size_bytes'] / 1e6:.1f} |")
    for target in result["targets"]:
        print(f"- {target['name']}: {target['value']} — {TARGET_STATES[target['met']]}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=[*TASKS, "custom"],
                        help="benchmark task; custom: --data DIR with train.yml, dev.yml (selection) and test.yml")
    parser.add_argument("--budget", choices=list(BUDGETS), default="quick",
                        help="quick (<= 30 min a task here: capped training set, smaller transfer set, fewer "
                             "epochs), full (the real recipe; hours for SST-2/CoLA) or smoke (tiny, for tests)")
    parser.add_argument("--source", type=Path, help="raw dataset folder (default ../shared/data/<task's source>)")
    parser.add_argument("--data", type=Path, help="custom task: folder with train.yml, dev.yml, test.yml")
    parser.add_argument("--teacher-model",
                        help="teacher backbone: minilm, usem, mpnet (after `make mpnet`), a folder or hub id "
                             "(default: chosen by the data, as `rasa-kd pipeline` chooses); a named one records "
                             "apart, as <budget>-<teacher>")
    parser.add_argument("--vectors", help="English tasks: a BiLSTM on word vectors (glove50 or a word2vec/GloVe "
                                          "text file) instead of the teacher's wordpieces (the default)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work",
                        help="work folder (default benchmarks/work; re-running resumes there)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results",
                        help="results folder (default benchmarks/results)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for every stage (42)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), metavar="SYSTEM",
                        help=f"systems to run and score (default all: {' '.join(SYSTEMS)}). The others keep their "
                             "scores from this budget's entry in the results file if it was made from the same "
                             "data and recipe, so a run too long for one machine's session can be split: "
                             "--systems teacher bilstm bert student_in_rasa on one, --systems diet on the next; "
                             "otherwise they are listed under not_run")
    args = parser.parse_args(argv)
    if args.task == "custom":
        if not args.data:
            parser.error("--task custom needs --data DIR")
        args.task_spec = Task("custom", "", ("test",), "accuracy", select="dev")
    else:
        args.task_spec = TASKS[args.task]
    return args


def main(argv=None) -> int:
    from rasa_kd.errors import UserError

    args = parse_args(argv)
    try:
        result = Run(args).run()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = write_result(args.results, result)
    print_summary(result)
    print(f"\nresults: {path} ({result['run_seconds']:.0f} s this run)")
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
