"""Several processes: `torchrun` or `accelerate launch` running one rasa-kd stage together.

    torchrun --nproc_per_node 2 -m rasa_kd.cli label --teacher T --transfer X --out Y
    accelerate launch --num_processes 8 -m rasa_kd.cli distil --transfer Y --dev dev.yml --out S

The launcher starts the processes and sets RANK / WORLD_SIZE / LOCAL_RANK; accelerate's
`PartialState` joins them into one process group (gloo on CPUs, NCCL on GPUs), the same
state `transformers.Trainer` uses for its data-parallel training. Without a launcher
there is one process and nothing here starts a process group.

Who does what: the Trainer-based stages (teacher, distil) train data-parallel; `label`
gives every process its own shards; only the main process writes packages and output
folders and prints reports (the CLI silences the others' stdout).
"""
import contextlib
import os
from typing import Iterator


def launched() -> bool:
    """True when a launcher started several processes for this run."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launcher_rank() -> int:
    """This process's rank as the launcher (torchrun, accelerate launch) set it; 0 without one.
    Read from the environment, so it works before torch is imported."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def _state():
    import torch
    from accelerate import PartialState

    # cpu=True is what makes accelerate join CPU processes (gloo); it is also what the
    # Trainer's use_cpu asks for, and the first PartialState fixes the shared state
    return PartialState(cpu=not torch.cuda.is_available())


def rank() -> int:
    return _state().process_index if launched() else 0


def world_size() -> int:
    return _state().num_processes if launched() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait until every process got here."""
    if launched():
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (e.g. builds and saves something), then the others
    (which find it done and load it)."""
    if not launched():
        yield
        return
    with _state().main_process_first():
        yield


def device():
    """The torch device of this process: its GPU under a launcher on a GPU machine, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return _state().device if launched() else torch.device("cuda")
    return torch.device("cpu")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def threads_per_process() -> int:
    """The machine's available cores shared by the processes this launcher started on it."""
    return max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
