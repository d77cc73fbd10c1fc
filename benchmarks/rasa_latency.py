"""Parse latency of the student pipeline (config.yml) vs Rasa's default DIET pipeline.

Both are trained on the same data (the demo assistant's training split, made by
`rasa-kd pipeline`; run `make demo` first or this script runs the pipeline), then
timed in the same run: in-process `Agent.parse_message` (median and p95 over the
test messages, one at a time, after warm-up) and POST /model/parse against
`rasa run --enable-api` on localhost, with the server's resident memory (process and
children) after the HTTP run. Targets: student pipeline <= 0.5x DIET's latency, and
no more resident memory than DIET's.

Writes benchmarks/results/rasa_latency.json and prints a markdown table.
"""
import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import results_json  # noqa: E402


def ensure_build(build: Path) -> None:
    if not (build / "student" / "student.json").exists():
        subprocess.run([str(Path(sys.executable).parent / "rasa-kd"), "pipeline", "--nlu", "data/nlu.yml",
                        "--out", str(build)], check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="rasa-kd pipeline output (build/)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rasa_latency.json")
    args = parser.parse_args()
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.chdir(ROOT)
    import rasa_runner
    from rasa_kd.formats.nlu_yaml import read_examples

    ensure_build(args.build)
    train, test = args.build / "data" / "train.yml", args.build / "data" / "test.yml"
    models = args.build / "latency-models"
    diet_config, student_config = args.build / "diet-config.yml", args.build / "student-config.yml"
    diet_config.write_text(rasa_runner.DIET_CONFIG)
    student_config.write_text(rasa_runner.student_config((args.build / "student").resolve()))
    pipelines = {"student": student_config, "diet": diet_config}
    texts = [e.text for e in read_examples(test)]
    results = {}
    for name, config in pipelines.items():
        model = rasa_runner.train_nlu(config, train, models, name)
        in_process = rasa_runner.parse_latency(model, texts)
        with rasa_runner.RasaServer(model, models / f"{name}-server.log") as server:
            http = rasa_runner.http_latency(server, texts)
            rss_mb = server.rss_mb()
        results[name] = {"config": str(config), "model_mb": rasa_runner.size_mb(model),
                         "in_process": in_process, "http": http, "rasa_run_rss_mb": rss_mb}
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "messages": len(texts),
        "pipelines": results,
        "ratio_in_process": results["student"]["in_process"]["median_ms"] / results["diet"]["in_process"]["median_ms"],
        "ratio_http": results["student"]["http"]["median_ms"] / results["diet"]["http"]["median_ms"],
        "ratio_rss": results["student"]["rasa_run_rss_mb"] / results["diet"]["rasa_run_rss_mb"],
        "target_ratio": 0.5,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(results_json(report, indent=2))
    print("| pipeline | in-process median ms | p95 ms | HTTP median ms | p95 ms | model MB | rasa run RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['in_process']['median_ms']:.2f} | {r['in_process']['p95_ms']:.2f} | "
              f"{r['http']['median_ms']:.2f} | {r['http']['p95_ms']:.2f} | {r['model_mb']:.1f} | "
              f"{r['rasa_run_rss_mb']:.0f} |")
    print(f"\nstudent / DIET: in-process {report['ratio_in_process']:.2f}x, HTTP {report['ratio_http']:.2f}x "
          f"(target <= 0.5x); rasa run memory {report['ratio_rss']:.2f}x; written to {args.out}")
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
