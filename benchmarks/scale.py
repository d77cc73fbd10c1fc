"""Past one machine, measured on this one: labelling with 1 and 2 processes, and peak memory
of labelling and distillation on a 1M-sentence transfer set.

    .venv/bin/python benchmarks/scale.py                          # both sections
    .venv/bin/python benchmarks/scale.py --sections processes

processes  The first --rows sentences (8,192) of Sara's transfer set from
           benchmarks/small_students.py, labelled by its MiniLM teacher twice:
           `rasa-kd label` in one process (all cores) and
           `torchrun --standalone --nproc_per_node 2 -m rasa_kd.cli label` (a share of the
           cores each). Sentences/s from label.json, wall seconds, peak memory.
memory     SST-2's training phrases, `rasa-kd augment --method rules --size 1000000`, then
           `rasa-kd label` and `rasa-kd distil` (the default preset) over all of it, each
           in its own process, with its peak resident memory. The teacher here is a random
           2-layer BERT (hidden 128) with MiniLM's tokenizer and SST-2's labels: labelling 1M
           sentences with MiniLM itself takes about an hour on 2 cores, and a teacher's own
           memory does not grow with the transfer set (the processes section measures
           MiniLM's). Distillation runs --distil-epochs (0.1) of an epoch: its data are read
           from Arrow batch by batch, so memory does not grow with the steps taken.

Stages are cached in benchmarks/work/distributed/ (a re-run resumes). Writes
benchmarks/results/scale.json and scale.md.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine, publish, versions  # noqa: E402
from rasa_kd.cli import quiet_environment  # noqa: E402
from rasa_kd.pipeline import Stages  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SMALL_SARA = ROOT / "benchmarks" / "work" / "small" / "sara"
MEMORY_LIMIT_GIB = 8


def measured(command: List[str], env: Dict = None) -> Dict:
    """Run `command`; its wall seconds and peak resident memory (largest process of its tree)."""
    started = time.time()
    process = subprocess.Popen(command, env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}")
    return {"seconds": round(time.time() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def cli(*argv) -> List[str]:
    return [sys.executable, "-m", "rasa_kd.cli", *map(str, argv)]


def torchrun(processes: int, *argv) -> List[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "rasa_kd.cli", *map(str, argv)]


def first_rows(source: Path, out: Path, rows: int) -> None:
    import datasets

    from rasa_kd.formats.outputs import atomic_output_dir
    from rasa_kd.formats.transfer_set import META_FILE

    with atomic_output_dir(out, force=True) as folder:
        datasets.load_from_disk(str(source)).select(range(rows)).save_to_disk(str(folder))
        shutil.copyfile(source / META_FILE, folder / META_FILE)


def processes_section(stages: Stages, work: Path, rows: int) -> Dict:
    from rasa_kd.transfer.label import shards_dir

    teacher, transfer = SMALL_SARA / "teacher", work / f"sara-transfer-{rows}"
    if not (SMALL_SARA / "transfer").is_dir():
        raise SystemExit("run benchmarks/small_students.py --tasks sara first (its teacher and transfer set)")
    stages.run("sara-transfer", {"rows": rows}, [SMALL_SARA / "transfer"], transfer,
               lambda: first_rows(SMALL_SARA / "transfer", transfer, rows))
    result = {"teacher": "MiniLM-L6 (benchmarks/work/small/sara/teacher)", "rows": rows}
    for name, processes in (("1 process", 1), ("2 processes", 2)):
        out = work / f"sara-labelled-{processes}"
        shutil.rmtree(out, ignore_errors=True)  # timed every run: nothing to resume
        shutil.rmtree(shards_dir(out), ignore_errors=True)
        argv = ("label", "--teacher", teacher, "--transfer", transfer, "--out", out, "--quiet")
        run = measured(cli(*argv) if processes == 1 else torchrun(processes, *argv))
        meta = json.loads((out / "label.json").read_text())
        result[name] = {**run, "processes": meta["processes"], "threads_per_process": meta["threads"],
                        "sentences_per_s": meta["sentences_per_s"]}
    result["speed_up"] = round(result["2 processes"]["sentences_per_s"] / result["1 process"]["sentences_per_s"], 3)
    return result


def scale_teacher(out: Path, train: Path) -> None:
    """A random 2-layer BERT (hidden 128) with MiniLM's tokenizer, as a teacher folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.formats.outputs import atomic_output_dir
    from rasa_kd.teachers.resources import minilm_path
    from rasa_kd.teachers.folder import write_teacher_files

    labels = sorted({e.intent for e in read_examples(train)})
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256, num_labels=len(labels))
    torch.manual_seed(0)
    with atomic_output_dir(out, force=True) as folder:
        BertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        write_teacher_files(folder, labels, pooling="mean", max_length=64)


def memory_section(stages: Stages, work: Path, size: int, distil_epochs: float) -> Dict:
    from rasa_kd.nlu_data.convert import convert

    converted, teacher = work / "sst2-converted", work / "scale-teacher"
    transfer, labelled, student = work / "sst2-transfer", work / "sst2-labelled", work / "sst2-student"
    source = SHARED / "sst2"
    stages.run("sst2-convert", {"source": str(source)}, [source], converted,
               lambda: convert("sst2", source, converted, force=True))
    train, dev = converted / "train.yml", converted / "dev.yml"
    stages.run("scale-teacher", {"hidden": 128, "layers": 2}, [train], teacher, lambda: scale_teacher(teacher, train))
    runs: Dict[str, Dict] = {}

    def timed(name: str, command: List[str], output: Path, inputs: List[Path], description: Dict) -> None:
        record = work / f"{name}.run.json"

        def action() -> None:
            record.write_text(json.dumps(measured(command)))
        stages.run(name, description, inputs, output, action)
        runs[name] = json.loads(record.read_text())

    timed("augment", cli("augment", "--train", train, "--exclude", dev, "--size", size, "--out", transfer,
                         "--force", "--quiet"), transfer, [train, dev], {"size": size})
    timed("label", cli("label", "--teacher", teacher, "--transfer", transfer, "--out", labelled, "--force",
                       "--quiet"), labelled, [transfer, teacher], {})
    timed("distil", cli("distil", "--transfer", labelled, "--dev", dev, "--out", student, "--epochs", distil_epochs,
                        "--force", "--fresh"), student, [labelled, dev], {"epochs": distil_epochs})
    rows = json.loads((labelled / "label.json").read_text())["rows"]
    manifest = json.loads((student / "student.json").read_text())
    peak = max(run["peak_rss_mb"] for run in runs.values())
    return {"transfer_rows": rows, "teacher": "random BERT, 2 layers, hidden 128, MiniLM tokenizer",
            "distil_epochs": distil_epochs, "student_parameters": manifest["parameters"]["total"],
            "stages": runs, "peak_rss_mb": peak, "limit_gib": MEMORY_LIMIT_GIB,
            "under_limit": peak < MEMORY_LIMIT_GIB * 1024}


def markdown(result: Dict) -> str:
    lines = ["# Scale: several processes, and memory on a 1M-sentence transfer set", "",
             f"Produced by `benchmarks/scale.py` on this machine ({result['machine']['cores']} cores, "
             f"{result['machine']['cpu']}).", ""]
    processes = result.get("processes")
    if processes:
        lines += [f"## Labelling {processes['rows']:,} Sara transfer sentences with MiniLM-L6", "",
                  "| run | processes x threads | sentences/s | wall s | peak MB per process |", "|---|---|---|---|---|"]
        for name in ("1 process", "2 processes"):
            run = processes[name]
            lines.append(f"| {name} | {run['processes']} x {run['threads_per_process']} | "
                         f"{run['sentences_per_s']:,.0f} | {run['seconds']:.1f} | {run['peak_rss_mb']:,.0f} |")
        lines += ["", f"2 processes / 1 process: {processes['speed_up']:.2f}x sentences/s (both on the same "
                      f"{result['machine']['cores']} cores; the launch and the model load are in the wall time, "
                      "not in sentences/s).", ""]
    memory = result.get("memory")
    if memory:
        lines += [f"## Peak memory on {memory['transfer_rows']:,} transfer sentences (SST-2 rules augmentation)", "",
                  f"Teacher: {memory['teacher']}; distillation: the default preset, "
                  f"{memory['distil_epochs']:g} of an epoch.", "", "| stage | wall s | peak MB |", "|---|---|---|"]
        for name, run in memory["stages"].items():
            lines.append(f"| {name} | {run['seconds']:.1f} | {run['peak_rss_mb']:,.0f} |")
        lines += ["", f"Largest: {memory['peak_rss_mb'] / 1024:.2f} GiB (limit {memory['limit_gib']} GiB).", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=("processes", "memory"), default=["processes", "memory"])
    parser.add_argument("--rows", type=int, default=8192, help="sentences labelled in the processes section")
    parser.add_argument("--size", type=int, default=1_000_000, help="new sentences of the memory section")
    parser.add_argument("--distil-epochs", type=float, default=0.1)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "distributed")
    args = parser.parse_args(argv)
    stages = Stages(args.work)
    path = ROOT / "benchmarks" / "results" / "scale.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result.update(benchmark="benchmarks/scale.py", machine=machine(), versions=versions())
    if "processes" in args.sections:
        result["processes"] = processes_section(stages, args.work, args.rows)
    if "memory" in args.sections:
        result["memory"] = memory_section(stages, args.work, args.size, args.distil_epochs)
    publish("scale", result, markdown(result))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
