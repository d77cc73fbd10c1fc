"""Errors that rasa-kd reports to the user as one line (exit status 2), never as a traceback."""
from pathlib import Path
from typing import Optional, Union


class UserError(Exception):
    """Bad input or a bad request: the CLI prints the message on one line and exits with 2."""


def at(path: Union[str, Path], line: Optional[int] = None) -> str:
    """`path` or `path:line`, the prefix of every message about a file's content."""
    return f"{path}:{line}" if line is not None else str(path)


def require_file(path: Union[str, Path], what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    return path


def require_dir(path: Union[str, Path], what: str = "folder") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: {what} not found")
    return path
