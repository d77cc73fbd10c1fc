"""`rasa-kd pipeline`: one command from a Rasa project's NLU data to a distilled student.

Stages (each is the rasa-kd command of the same name, run in-process):
  split     OUT/data/{train,dev,test}.yml   held-out test (unless --test) and dev splits
  teacher   OUT/teacher/                    fine-tuned teacher(s)
  augment   OUT/transfer/                   Arrow transfer set (rules and/or lm)
  label     OUT/transfer-labelled/          + teacher logits
  distil    OUT/student/                    the student package
  export    OUT/student/model.onnx          the student as ONNX, checked against PyTorch
  evaluate  OUT/metrics-teacher.json, OUT/metrics-student.json on the test split

A stage is skipped when its output exists and `OUT/.stages/<stage>.json` records the
same arguments and the same input files (size and content hash): an interrupted
run resumes at the first stage that did not finish, and a changed input or option
re-runs that stage and everything after it. At the end it prints the config.yml
snippet that uses the student.
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from rasa_kd.errors import UserError

HELP = "run split -> teacher -> augment -> label -> distil -> export -> evaluate on a Rasa NLU file, resumably"


def file_digest(file: Path) -> str:
    digest = hashlib.sha1()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_fingerprint(paths: Sequence[Path]) -> List[List]:
    """[path, size, SHA-1] per input file: by content, not modification time, because data
    folders that are copied or re-mounted get new times and must not invalidate every stage."""
    rows = []
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            rows.append([str(file), file.stat().st_size, file_digest(file)])
    return rows


class Stages:
    """Runs rasa-kd commands, skipping those whose recorded arguments and inputs are unchanged."""

    def __init__(self, out: Path):
        self.out = out
        self.record_dir = out / ".stages"
        self.timings: Dict[str, float] = {}

    def run(self, name: str, argv: List[str], inputs: Sequence[Path], output: Path,
            replaces_output: bool = True, action: Optional[Callable[[], None]] = None) -> None:
        """Run `rasa-kd ARGV` (or `action()`, with `argv` as its recorded description) unless
        it is up to date."""
        from rasa_kd import cli

        record = {"argv": argv, "inputs": input_fingerprint(inputs)}
        record_file = self.record_dir / f"{name}.json"
        if output.exists() and record_file.exists() and self._same_run(json.loads(record_file.read_text()), record):
            print(f"== {name}: up to date, skipped ({output})", flush=True)
            self.timings[name] = 0.0
            return
        started = time.time()
        if action is None:
            print(f"== {name}: rasa-kd {' '.join(argv)}", flush=True)
            force = ["--force"] if output.exists() and replaces_output else []
            status = cli.run_command(argv + force)
            if status != 0:
                raise UserError(f"stage {name} failed (exit status {status}); fix the cause and re-run to resume")
        else:
            print(f"== {name}: {' '.join(argv)}", flush=True)
            action()
        self.timings[name] = time.time() - started
        self.record_dir.mkdir(parents=True, exist_ok=True)
        record["inputs"] = input_fingerprint(inputs)
        record["seconds"] = round(self.timings[name], 1)
        record_file.write_text(json.dumps(record, indent=1))
        print(f"== {name}: {self.timings[name]:.1f} s", flush=True)

    @staticmethod
    def _same_run(saved: Dict, record: Dict) -> bool:
        return all(saved.get(key) == value for key, value in record.items())

    def seconds(self, name: str) -> Optional[float]:
        """How long the stage took when it last ran (also when it was skipped this time)."""
        record_file = self.record_dir / f"{name}.json"
        return json.loads(record_file.read_text()).get("seconds") if record_file.exists() else None


def config_snippet(student: Path) -> str:
    return f"""pipeline:
  - name: WhitespaceTokenizer
  - name: rasa_kd.components.StudentIntentClassifier
    student: {student}
    onnx: true
  - name: FallbackClassifier
    threshold: 0.3"""


def run_pipeline(args) -> Dict:
    out: Path = args.out
    data, teacher, transfer = out / "data", out / "teacher", out / "transfer"
    labelled, student = out / "transfer-labelled", out / "student"
    stages = Stages(out)
    split_argv = ["split", "--nlu", str(args.nlu), "--out", str(data), "--seed", str(args.seed),
                  "--dev-fraction", str(args.dev_fraction)]
    split_argv += ["--test-fraction", "0" if args.test else str(args.test_fraction)]
    stages.run("split", split_argv, [args.nlu], data)
    test_file = args.test or data / "test.yml"
    teachers = args.teacher or ["minilm"]
    teacher_dirs = [teacher] if len(teachers) == 1 else [out / f"teacher-{i}" for i in range(len(teachers))]
    for backbone, folder in zip(teachers, teacher_dirs):
        stages.run(folder.name, ["teacher", "--train", str(data / "train.yml"), "--dev", str(data / "dev.yml"),
                                 "--model", backbone, "--out", str(folder), "--seed", str(args.seed)],
                   [data], folder)
    augment_argv = ["augment", "--method", args.augment, "--train", str(data / "train.yml"),
                    "--exclude", str(data / "dev.yml"), "--exclude", str(test_file),
                    "--out", str(transfer), "--seed", str(args.seed)]
    if args.size:
        augment_argv += ["--size", str(args.size)]
    stages.run("augment", augment_argv, [data], transfer)
    teacher_args = [a for folder in teacher_dirs for a in ("--teacher", str(folder))]
    stages.run("label", ["label", *teacher_args, "--transfer", str(transfer), "--out", str(labelled)],
               [transfer, *teacher_dirs], labelled)
    distil_argv = ["distil", "--transfer", str(labelled), "--student", args.student, "--dev", str(data / "dev.yml"),
                   "--out", str(student), "--seed", str(args.seed), "--epochs", str(args.epochs)]
    if args.student == "bilstm":
        distil_argv += ["--vocab", args.vocab]
    stages.run("distil", distil_argv, [labelled, data], student)
    # ONNX is the fast path on CPU (BiLSTM ~0.7 ms/example vs ~3 ms in PyTorch); the
    # components use it with `onnx: true`.
    stages.run("export", ["export", "--model", str(student), "--onnx"], [student / "model.safetensors"],
               student / "model.onnx", replaces_output=False)
    results = {}
    for name, model in (("teacher", teacher_dirs[0]), ("student", student)):
        metrics_file = out / f"metrics-{name}.json"
        stages.run(f"evaluate-{name}", ["evaluate", "--model", str(model), "--data", str(test_file),
                                        "--out", str(metrics_file)], [model, Path(test_file)], metrics_file,
                   replaces_output=False)
        results[name] = json.loads(metrics_file.read_text())
    print("\nstage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.timings.items()))
    print(f"\nAdd the student to your config.yml:\n\n{config_snippet(student)}\n")
    return {"timings": stages.timings, "metrics": results, "student": str(student)}


def add_arguments(parser) -> None:
    parser.description = __doc__
    parser.add_argument("--nlu", required=True, type=Path, help="the assistant's Rasa NLU file or folder")
    parser.add_argument("--out", required=True, type=Path, help="build folder (re-running resumes in it)")
    parser.add_argument("--test", type=Path, help="held-out test file (default: a stratified split of --nlu)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="test share when --test is not given (0.2)")
    parser.add_argument("--dev-fraction", type=float, default=0.1, help="dev share for early stopping (0.1)")
    parser.add_argument("--teacher", action="append",
                        help="teacher backbone: minilm (default), a local folder or a hub id; repeat for an ensemble")
    parser.add_argument("--student", choices=("bilstm", "bert"), default="bilstm", help="student kind (bilstm)")
    parser.add_argument("--vocab", choices=("words", "wordpieces"), default="words",
                        help="bilstm vocabulary: words with GloVe vectors (default; fast, English) or the "
                             "teacher's wordpieces (any language the teacher knows)")
    parser.add_argument("--epochs", type=float, default=10, help="student training epochs (10)")
    parser.add_argument("--augment", default="rules", help="augmentation method(s): rules (default), lm, rules,lm")
    parser.add_argument("--size", type=int, help="transfer-set size (default: the augment command's default)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for every stage (42)")


def run(args) -> int:
    if args.test and not Path(args.test).exists():
        raise UserError(f"{args.test}: test file not found")
    run_pipeline(args)
    return 0
