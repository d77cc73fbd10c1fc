"""Load: `rasa run --enable-api` under concurrent /model/parse traffic, student pipeline vs DIET.

    .venv/bin/python benchmarks/load.py --task sara      # needs benchmarks/rasa_train.py --task sara first
    .venv/bin/python benchmarks/load.py --task demo --seconds 60 --concurrency 500

For each Rasa model that benchmarks/rasa_train.py made for the task (the in-graph
student pipeline and Rasa's default DIET pipeline): start `rasa run --enable-api` on
127.0.0.1, send a few warm-up requests, read the server's resident memory, then keep
--concurrency requests in flight (each client task posts the next test sentence as
soon as its answer comes) for --seconds, read the memory again and stop the server.
Loopback only; the run stops by itself. Reported per pipeline: requests/s, p50/p90/p99
latency (ms, queueing included), errors (non-200 answers, timeouts, refused
connections) and resident memory before/after (growth suggests a leak). Client and
server share this machine's cores, the same for both pipelines.
Writes benchmarks/results/load.json and load.md.
"""
import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish  # noqa: E402

PIPELINES = ("student", "diet")
WARMUP_REQUESTS = 20
REQUEST_TIMEOUT_S = 120


async def fire(url: str, texts, concurrency: int, seconds: float):
    """(latencies in ms of the answered requests, error counts by kind, wall seconds)."""
    import aiohttp

    latencies, errors = [], {}
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
        async def client(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(f"{url}/model/parse", json={"text": texts[i % len(texts)]}) as answer:
                        body = await answer.json(content_type=None)
                        ok = answer.status == 200 and bool(body.get("intent", {}).get("name"))
                        kind = None if ok else f"status {answer.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    kind = type(error).__name__
                if kind is None:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[kind] = errors.get(kind, 0) + 1
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def percentile(sorted_values, share: float) -> float:
    return round(sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))], 1) if sorted_values else None


def load_one(model: Path, texts, concurrency: int, seconds: float, log: Path) -> dict:
    from rasa_runner import RasaServer

    with RasaServer(model, log) as server:
        for text in texts[:WARMUP_REQUESTS]:
            server.parse(text)
        rss_before = server.rss_mb()
        latencies, errors, wall = asyncio.run(fire(server.url, texts, concurrency, seconds))
        rss_after = server.rss_mb()
    latencies.sort()
    return {"model": str(model), "model_mb": round(model.stat().st_size / 1e6, 1), "wall_seconds": round(wall, 1),
            "requests": len(latencies), "requests_per_second": round(len(latencies) / wall, 1),
            "p50_ms": percentile(latencies, 0.5), "p90_ms": percentile(latencies, 0.9),
            "p99_ms": percentile(latencies, 0.99), "errors": sum(errors.values()), "errors_by_kind": errors,
            "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_after, 1),
            "rss_growth": round(rss_after / rss_before - 1, 4)}


def markdown(result: dict) -> str:
    lines = [f"# Load: `rasa run --enable-api`, {result['concurrency']} concurrent /model/parse requests for "
             f"{result['seconds']:.0f} s ({result['task']})", "",
             f"Test sentences of {result['task']}, cycled; client and server on this machine "
             f"({result['cpu_count']} cores), loopback.", "",
             "| pipeline | model MB | requests/s | p50 ms | p90 ms | p99 ms | errors | RSS before MB | RSS after MB | growth |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in PIPELINES:
        r = result[name]
        lines.append(f"| {name} | {r['model_mb']} | {r['requests_per_second']} | {r['p50_ms']} | {r['p90_ms']} | "
                     f"{r['p99_ms']} | {r['errors']} | {r['rss_mb_before']} | {r['rss_mb_after']} | "
                     f"{r['rss_growth']:+.1%} |")
    lines += ["", f"Student throughput: {result['throughput_ratio']:.2f}x DIET's."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("demo", "sara"), default="sara")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of traffic per pipeline (default 60)")
    parser.add_argument("--concurrency", type=int, default=500, help="requests in flight (default 500)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "rasa-train")
    args = parser.parse_args(argv)
    from rasa_kd.cli import quiet_environment
    from rasa_kd.formats.nlu_yaml import read_examples

    quiet_environment()
    work = args.work / args.task
    models = {name: work / "models" / f"{name}.tar.gz" for name in PIPELINES}
    missing = [str(path) for path in models.values() if not path.is_file()]
    if missing:
        sys.exit(f"load: {', '.join(missing)} not found: run benchmarks/rasa_train.py --task {args.task} first")
    test = work / ("converted" if args.task == "sara" else "data") / "test.yml"
    texts = [e.text for e in read_examples(test)]
    result = {"task": args.task, "test": str(test), "concurrency": args.concurrency, "seconds": args.seconds,
              "cpu_count": os.cpu_count()}
    for name, model in models.items():
        print(f"== {name}: {args.concurrency} concurrent requests for {args.seconds:.0f} s", flush=True)
        result[name] = load_one(model, texts, args.concurrency, args.seconds, work / f"load-{name}.log")
        print(json.dumps(result[name]), flush=True)
    result["throughput_ratio"] = round(result["student"]["requests_per_second"] /
                                       max(result["diet"]["requests_per_second"], 1e-9), 2)
    publish("load", result, markdown(result))
    return 0


if __name__ == "__main__":
    from rasa_kd import console

    console.configure()
    sys.exit(main())
