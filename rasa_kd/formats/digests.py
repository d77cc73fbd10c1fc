"""Content hashes of files: inputs are known by their bytes, not their paths or times, because
data folders that are copied or re-mounted get new times (and ../shared/data new mtimes each session)."""
import hashlib
from pathlib import Path
from typing import Union


def add_file(digest, file: Union[str, Path]):
    """Feed the file's bytes to a hashlib object, 1 MiB at a time; returns the object."""
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def file_digest(file: Union[str, Path], algorithm: str = "sha1") -> str:
    return add_file(hashlib.new(algorithm), file).hexdigest()
