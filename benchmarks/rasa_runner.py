"""Train, test and time Rasa NLU models the way a user would: `rasa train nlu`, `rasa test nlu`,
`Agent.parse_message`. Used by `make demo` and the benchmarks to compare pipelines."""
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from rasa_kd.errors import UserError
from rasa_kd.pipeline import FALLBACK_THRESHOLD, config_snippet

# Rasa's default NLU pipeline, as `rasa init` writes it (CountVectors word + char, DIET).
DIET_CONFIG = f"""recipe: default.v1
language: en
assistant_id: diet-baseline
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    constrain_similarities: true
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 100
    constrain_similarities: true
  - name: FallbackClassifier
    threshold: {FALLBACK_THRESHOLD}
    ambiguity_threshold: 0.1
policies: []
"""


def student_config(student: Path, entities: bool = False, joint: bool = False) -> str:
    """A whole Rasa config: the student pipeline (with the recommended entity extractor when
    `entities`; `joint`: the student's own token head), with the same FallbackClassifier as DIET_CONFIG."""
    return whole_config(config_snippet(student, entities, joint))


def whole_config(snippet: str) -> str:
    """A Rasa config around a pipeline snippet, with the same FallbackClassifier as DIET_CONFIG."""
    return (f"recipe: default.v1\nlanguage: en\nassistant_id: rasa-kd-student\n{snippet}\n"
            f"    ambiguity_threshold: 0.1\npolicies: []\n")


def rasa_command() -> List[str]:
    return [str(Path(sys.executable).parent / "rasa")]


def quiet_env(log_level: str = "WARNING") -> Dict[str, str]:
    return dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", LOG_LEVEL=log_level)


def run_rasa(args: Sequence[str], cwd: Path, log: Path, log_level: str = "WARNING") -> None:
    """Run a `rasa` CLI command at Rasa's `log_level` (rasa-kd's stage lines are INFO); its output
    goes to `log`, a failure names the log."""
    with open(log, "w") as f:
        result = subprocess.run([*rasa_command(), *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                env=quiet_env(log_level))
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"rasa {args[0]} {args[1]} failed: {tail[0]} (full log: {log})")


def absolute(cwd: Optional[Path], *paths: Path) -> List[Path]:
    """Paths as the caller meant them (relative to `cwd` when given, else to the current folder), made
    absolute, because Rasa may run elsewhere."""
    return [Path(path) if Path(path).is_absolute() else (Path(cwd or ".") / path).resolve() for path in paths]


def train_nlu(config: Path, nlu: Path, out_dir: Path, name: str, cwd: Optional[Path] = None,
              log_level: str = "WARNING") -> Path:
    """`rasa train nlu`, run in `cwd` (default `out_dir`: Rasa's .rasa/cache goes where Rasa runs);
    returns the model tarball."""
    config, nlu, out_dir = absolute(cwd, config, nlu, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_rasa(["train", "nlu", "--config", str(config), "--nlu", str(nlu), "--out", str(out_dir),
              "--fixed-model-name", name], cwd or out_dir, out_dir / f"{name}-train.log", log_level)
    return out_dir / f"{name}.tar.gz"


def train_assistant(config: Path, domain: Path, data: Path, out_dir: Path, name: str,
                    cwd: Optional[Path] = None) -> Path:
    """`rasa train` of a whole assistant (NLU and dialogue); returns the model tarball."""
    config, domain, data, out_dir = absolute(cwd, config, domain, data, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_rasa(["train", "--config", str(config), "--domain", str(domain), "--data", str(data), "--out", str(out_dir),
              "--fixed-model-name", name], cwd or out_dir, out_dir / f"{name}-train.log")
    return out_dir / f"{name}.tar.gz"


def test_nlu(model: Path, test_file: Path, out_dir: Path, cwd: Optional[Path] = None) -> Dict:
    """`rasa test nlu`; returns Rasa's intent accuracy, macro- and weighted-F1 and example count,
    plus `scores` (rasa_kd.evaluation.metrics, incl. MCC) over the predictions Rasa wrote."""
    from rasa_kd.evaluation.metrics import classification_scores

    model, test_file, out_dir = absolute(cwd, model, test_file, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_rasa(["test", "nlu", "--model", str(model), "--nlu", str(test_file), "--out", str(out_dir), "--successes"],
             cwd or out_dir, out_dir / "test.log")
    report = json.loads((out_dir / "intent_report.json").read_text())
    predictions = [(row["intent"], row["intent_prediction"]["name"] or "")
                   for name in ("intent_successes.json", "intent_errors.json") if (out_dir / name).exists()
                   for row in json.loads((out_dir / name).read_text())]
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro avg"]["f1-score"],
        "weighted_f1": report["weighted avg"]["f1-score"],
        "n": int(report["macro avg"]["support"]),
        "scores": classification_scores(*zip(*predictions)) if predictions else None,
        "entities": entity_reports(out_dir),
    }


NOT_ENTITY_REPORTS = ("intent_report.json", "response_selection_report.json")


def entity_reports(out_dir: Path) -> Dict[str, Dict]:
    """Rasa's token-level entity report per extractor (`<Extractor>_report.json`): micro, macro
    and weighted F1 over the entity labels (no_entity excluded, as Rasa does) and F1 per entity."""
    reports = {}
    for path in sorted(out_dir.glob("*_report.json")):
        if path.name in NOT_ENTITY_REPORTS:
            continue
        report = json.loads(path.read_text())
        micro, macro, weighted = (report.get(f"{name} avg") or {} for name in ("micro", "macro", "weighted"))
        reports[path.name[: -len("_report.json")]] = {
            "micro_f1": micro.get("f1-score"), "micro_precision": micro.get("precision"),
            "micro_recall": micro.get("recall"), "macro_f1": macro.get("f1-score"),
            "weighted_f1": weighted.get("f1-score"), "support": int(macro.get("support", 0)),
            "per_entity": {label: {"f1": row["f1-score"], "support": int(row["support"])}
                           for label, row in report.items()
                           if isinstance(row, dict) and "f1-score" in row and not label.endswith(" avg")},
        }
    return reports


@contextlib.contextmanager
def loaded_agent(model: Path):
    """A `parse(text) -> dict` function over an in-process Rasa Agent."""
    import asyncio
    import logging

    import structlog
    from rasa.core.agent import Agent

    # Rasa logs every parse at debug level through structlog; that would be timed too.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()
    try:
        yield lambda text: loop.run_until_complete(agent.parse_message(text))
    finally:
        loop.close()


def parse_latency(model: Path, texts: Sequence[str], warmup: int = 10) -> Dict[str, float]:
    """Median and p95 milliseconds of in-process `Agent.parse_message`, one message at a time,
    and the seconds `Agent.load` took (CRFEntityExtractor, for one, re-trains when loaded)."""
    started = time.perf_counter()
    with loaded_agent(model) as parse:
        load_seconds = time.perf_counter() - started
        return {**time_calls(parse, texts, warmup), "load_seconds": round(load_seconds, 2)}


def parse_messages(model: Path, texts: Sequence[str]) -> List[Dict]:
    with loaded_agent(model) as parse:
        return [parse(text) for text in texts]


def time_calls(call, texts: Sequence[str], warmup: int) -> Dict[str, float]:
    """Median and p95 milliseconds of `call(text)` over `texts`, after `warmup` untimed calls."""
    for text in list(texts)[:warmup]:
        call(text)
    times = []
    for text in texts:
        started = time.perf_counter()
        call(text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))],
            "n": len(times)}


def size_mb(path: Path) -> float:
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RasaServer:
    """`rasa run --enable-api` on a free localhost port, as a context manager."""

    PORT_ATTEMPTS = 3

    def __init__(self, model: Path, log: Path, timeout: float = 180, credentials: Path = None):
        self.model, self.log, self.timeout = Path(model), Path(log), timeout
        self.credentials = credentials

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "RasaServer":
        # The free port is released before Rasa binds it, so another process may take it
        # first: Rasa then exits with "address already in use", and we try another port.
        for _ in range(self.PORT_ATTEMPTS):
            self.port = free_port()
            if self._start():
                return self
        raise UserError(f"rasa run found no free port in {self.PORT_ATTEMPTS} attempts (log: {self.log})")

    def _start(self) -> bool:
        """True once the server answers /status with a loaded model; False when its port was taken."""
        import urllib.request

        self._log_file = open(self.log, "w")
        self.process = subprocess.Popen(
            [*rasa_command(), "run", "--enable-api", "--model", str(self.model), "--port", str(self.port),
             "--interface", "127.0.0.1", *(["--credentials", str(self.credentials)] if self.credentials else [])],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=quiet_env())
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.__exit__()
                if "address already in use" in self.log.read_text(errors="replace").lower():
                    return False
                raise UserError(f"rasa run exited with status {self.process.returncode} (log: {self.log})")
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=2) as response:
                    if response.status == 200 and json.loads(response.read()).get("model_file"):
                        return True
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise UserError(f"rasa run did not answer on {self.url} within {self.timeout:.0f} s (log: {self.log})")

    def parse(self, text: str) -> Dict:
        import urllib.request

        request = urllib.request.Request(f"{self.url}/model/parse", data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def say(self, sender: str, text: str) -> List[str]:
        """The bot's text replies to `text` over the REST channel (needs `credentials` with `rest:`)."""
        import urllib.request

        request = urllib.request.Request(f"{self.url}/webhooks/rest/webhook",
                                         data=json.dumps({"sender": sender, "message": text}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return [reply.get("text", "") for reply in json.loads(response.read())]

    def rss_mb(self) -> float:
        """Resident memory of the server process and its children, in MB."""
        import psutil

        process = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 1e6

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def http_latency(server: RasaServer, texts: Sequence[str], warmup: int = 5) -> Dict[str, float]:
    """Median and p95 milliseconds of POST /model/parse, one request at a time."""
    return time_calls(server.parse, texts, warmup)
