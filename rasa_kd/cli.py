"""`rasa-kd`: the command line of the distillation pipeline.

The commands are declared in `rasa_kd.commands` (name, help, options dataclass, stage
function). Only the command that runs, or whose `--help` is asked for, is imported, so
`rasa-kd --help` stays fast whatever the stage modules import.
"""
import argparse
import os
import sys
from typing import List, Optional

from rasa_kd import __version__, console
from rasa_kd.commands import COMMANDS, Command, resolve
from rasa_kd.distributed import launcher_rank
from rasa_kd.errors import UserError
from rasa_kd.options import add_options, from_namespace

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


def chosen_command(argv: List[str]) -> Optional[str]:
    """The command name on the command line (the first word that is not a flag)."""
    return next((word for word in argv if not word.startswith("-")), None)


def add_command_arguments(parser: argparse.ArgumentParser, command: Command) -> None:
    parser.description = command.description
    add_options(parser, resolve(command.options), track_given=command.from_namespace is not None)
    parser.set_defaults(command_spec=command)


def build_parser(argv: Optional[List[str]] = None, all_commands: bool = False) -> argparse.ArgumentParser:
    """The parser; the flags of the command named in `argv` (or of every command) only."""
    parser = argparse.ArgumentParser(
        prog="rasa-kd",
        description="Distil a fine-tuned BERT teacher into small, fast students for Rasa NLU.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    parser.add_argument("--version", action="version", version=f"rasa-kd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = chosen_command(list(argv or []))
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, formatter_class=argparse.RawDescriptionHelpFormatter)
        if all_commands or name == chosen:
            add_command_arguments(sub, command)
    return parser


def options_of(command: Command, namespace: argparse.Namespace):
    """The command's options dataclass from the parsed flags."""
    if command.from_namespace:
        return resolve(command.from_namespace)(namespace)
    return from_namespace(resolve(command.options), namespace)


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
    console.configure()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    command = getattr(args, "command_spec", None)
    if command is None:
        parser.print_help()
        return 2

    try:
        resolve(command.function)(options_of(command, args))
        return 0
    except UserError as error:
        if launcher_rank() == 0:  # under a launcher every process meets the error: one line, not one each
            print(f"rasa-kd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rasa-kd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
