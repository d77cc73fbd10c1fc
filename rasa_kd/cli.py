"""`rasa-kd`: the command line of the distillation pipeline.

Each subcommand is one pipeline stage in its own module, exposing `HELP`,
`add_arguments(parser)` and `run(args)`. Stage modules import heavy libraries
(torch, transformers, rasa) inside functions, so `--help` stays fast.
"""
import argparse
import importlib
import os
import sys
from typing import List, Optional

# Subcommand -> module. Later stages register here.
COMMANDS = {
    "convert": "rasa_kd.convert",
    "split": "rasa_kd.split",
    "teacher": "rasa_kd.teacher",
    "augment": "rasa_kd.augment",
    "label": "rasa_kd.label",
    "distil": "rasa_kd.distil",
    "export": "rasa_kd.export",
    "calibrate": "rasa_kd.calibration",
    "evaluate": "rasa_kd.evaluate",
    "analyse": "rasa_kd.analyse",
    "pipeline": "rasa_kd.pipeline",
    "install": "rasa_kd.install",
}

EPILOG = """pipeline: convert -> teacher -> augment -> label -> distil -> export/evaluate
files:    Rasa NLU YAML -> teacher folder -> Arrow transfer set -> student package -> Rasa model
Run `rasa-kd COMMAND --help` for a command's arguments, defaults and output files."""


def quiet_environment() -> None:
    """Keep transformers off TensorFlow (slow, noisy) and Rasa's telemetry off."""
    for key, value in {
        "USE_TF": "0",
        "TRANSFORMERS_NO_TF": "1",
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rasa-kd",
        description="Distil a fine-tuned BERT teacher into small, fast students for Rasa NLU.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from rasa_kd import __version__

    parser.add_argument("--version", action="version", version=f"rasa-kd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=module.HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def silence_other_processes() -> None:
    """Under torchrun / accelerate launch only the main process (RANK 0) prints reports;
    the others' errors still reach stderr."""
    if int(os.environ.get("RANK", "0")) != 0:
        sys.stdout = open(os.devnull, "w")


def main(argv: Optional[List[str]] = None) -> int:
    quiet_environment()
    silence_other_processes()
    return run_command(argv)


def run_command(argv: Optional[List[str]] = None) -> int:
    """Parse and run one command; a UserError becomes one stderr line and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    from rasa_kd.distributed import launcher_rank
    from rasa_kd.errors import UserError

    try:
        return args.run(args) or 0
    except UserError as error:
        if launcher_rank() == 0:  # under a launcher every process meets the error: one line, not one each
            print(f"rasa-kd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rasa-kd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
