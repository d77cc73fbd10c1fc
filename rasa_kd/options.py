"""Typed stage options: one dataclass per stage, the single home of its defaults and help.

In the manner of Hugging Face's `HfArgumentParser`: each field of an options
dataclass becomes a command-line flag (`--field-name`, or the names given in its
metadata), with the field's default and help text. The CLI parses into the
dataclass; the pipeline, the benchmarks and the Rasa components build the same
dataclass directly, and what a stage records (e.g. the recipe in student.json) is
that object. A preset (see `rasa_kd.students.presets`) is a named set of field values.

    @dataclass
    class Options:
        epochs: float = option(10, "epochs over the transfer set")
        student: str = option("bilstm", "architecture", choices=("bilstm", "bert"))
"""
import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Type, TypeVar

from rasa_kd.errors import UserError

T = TypeVar("T")


class _Unset:
    """Parser default of `add_options(..., track_given=True)`: marks a flag the user did not give."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def option(default: Any = dataclasses.MISSING, help: str = "", *, flags: Sequence[str] = (), group: str = "",
           choices: Optional[Sequence] = None, metavar: Optional[str] = None, action: Optional[str] = None,
           required: bool = False, nargs: Optional[str] = None, rerun_earlier: bool = False):
    """A dataclass field that is also a command-line option (see the module docstring).

    action="append" (a repeated flag) or nargs="+" (one flag, several values) makes a
    list option (default None); a bool field is a store_true flag unless action says
    otherwise. `rerun_earlier`: an option whose default changes what its stage makes, so that a
    stage recorded before the option existed runs again (`rasa-kd pipeline`'s records fill other
    missing options with their defaults)."""
    metadata = {"help": help, "flags": tuple(flags), "group": group, "choices": choices, "metavar": metavar,
                "action": action, "nargs": nargs, "required": required or default is dataclasses.MISSING,
                "rerun_earlier": rerun_earlier}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=None if default is dataclasses.MISSING else default, metadata=metadata)


def _scalar_type(annotation) -> Any:
    """`Optional[int]` -> int, `Path` -> Path, `List[Path]` -> Path."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, list, typing.List) and args:
        return _scalar_type(args[0])
    return annotation


def _help(field, default) -> str:
    text = field.metadata.get("help", "")
    if field.metadata.get("required") or default is None or default is False or default in ([], ()):
        return text
    return f"{text} (default {default:g})" if isinstance(default, float) else f"{text} (default {default})"


def add_options(parser: argparse.ArgumentParser, cls: Type, defaults: Optional[Dict[str, Any]] = None,
                track_given: bool = False) -> None:
    """Add one flag per field of `cls` to `parser` (in argument groups named by the fields).

    track_given: flags the user does not give parse to UNSET (the help still shows
    the default), so that `from_namespace(cls, ns, base)` can lay the given ones over
    a preset's values."""
    hints = typing.get_type_hints(cls)
    groups: Dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if "help" not in meta:
            continue
        target = parser
        if meta.get("group"):
            target = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        default = (defaults or {}).get(field.name, field.default if field.default is not dataclasses.MISSING
                                       else field.default_factory())
        flags = meta["flags"] or (f"--{field.name.replace('_', '-')}",)
        kwargs: Dict[str, Any] = {"dest": field.name, "help": _help(field, default), "default": default}
        positional = not flags[0].startswith("-")  # flags=("name",): argparse names its dest itself
        kind = _scalar_type(hints[field.name])
        if meta.get("action") in ("store_true", "store_false") or (kind is bool and not meta.get("action")):
            kwargs["action"] = meta.get("action") or "store_true"
        else:
            kwargs["type"] = kind if kind in (int, float, Path) else str
            if meta.get("action"):
                kwargs["action"] = meta["action"]
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
            if meta.get("nargs"):
                kwargs["nargs"] = meta["nargs"]
            if meta.get("required"):
                kwargs["required"] = True
                kwargs.pop("default")
        if track_given and "default" in kwargs:
            kwargs["default"] = UNSET
        if positional:
            kwargs.pop("dest")
            kwargs.pop("required", None)
        target.add_argument(*flags, **kwargs)


def from_namespace(cls: Type[T], namespace: argparse.Namespace, base: Optional[T] = None) -> T:
    """The `cls` instance holding the parsed values of its fields; with `base`, the
    values given on the command line (not UNSET) replace base's."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(namespace).items() if k in names and v is not UNSET}
    if base is not None:
        return dataclasses.replace(base, **given)
    missing = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
               for f in dataclasses.fields(cls) if f.name not in given}
    return cls(**given, **missing)


def parse_options(cls: Type[T], argv: Sequence[Any], prog: str = "rasa-kd",
                  defaults: Optional[Dict[str, Any]] = None) -> T:
    """`cls` from a list of command-line strings (for scripts and tests)."""
    parser = argparse.ArgumentParser(prog=prog)
    add_options(parser, cls, defaults)
    return from_namespace(cls, parser.parse_args([str(a) for a in argv]))


def check_required(options) -> None:
    """One UserError line for a required field left unset (None) when built in Python."""
    missing = [f.name for f in dataclasses.fields(options)
               if f.metadata.get("required") and getattr(options, f.name) is None]
    if missing:
        raise UserError(f"{type(options).__name__}: {', '.join(missing)} must be given")


def as_record(options) -> Dict[str, Any]:
    """The options as JSON-able values (paths as strings)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(options, f.name)) for f in dataclasses.fields(options)}
