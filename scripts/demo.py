"""`make demo`: run the whole rasa-kd path on the embedded demo assistant and print a result table.

Stages that are not implemented yet are reported as such and skipped.
"""
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "demo-build"


def stage(name: str, command: list) -> float:
    print(f"\n== {name}: {' '.join(command)}", flush=True)
    started = time.time()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.time() - started
    print(f"== {name}: {seconds:.1f} s", flush=True)
    return seconds


def main() -> int:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    bin_dir = Path(sys.executable).parent
    timings = {}
    if importlib.util.find_spec("rasa_kd.pipeline") is None:
        print("rasa-kd pipeline is not implemented yet: the demo converts and checks the demo NLU data only.")
        BUILD.mkdir(exist_ok=True)
        timings["convert"] = stage("convert", [str(bin_dir / "rasa-kd"), "convert", "rasa", "--source",
                                               "data/nlu.yml", "--out", str(BUILD / "nlu"), "--force"])
    print("\nstage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
