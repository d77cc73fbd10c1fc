"""How the library's log reaches a terminal.

The library logs through `logging`, on loggers under `rasa_kd` (and `rasa_kd.components`);
it never prints. Inside `rasa train`, Rasa's handlers and log level apply (`--quiet`,
`--debug`). The `rasa-kd` command installs `ConsoleHandler` on the `rasa_kd` logger:
INFO lines print to stdout as they are (the lines the commands print), warnings and
errors to stderr. Progress bars (tqdm) write to stderr themselves.
"""
import logging
import sys

LIBRARY_LOGGER = "rasa_kd"


class ConsoleHandler(logging.Handler):
    """INFO and below to stdout, WARNING and above to stderr; the message alone. The streams are
    looked up when a line is written, so a redirected sys.stdout (a launcher's other ranks, a
    test's capture) gets it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never stop the program
            self.handleError(record)


def configure(level: int = logging.INFO, propagate: bool = False) -> None:
    """Print the library's log on the terminal: the first call sets it up, later ones change nothing.

    propagate: also hand the records to the root logger's handlers; off by default, because a
    library the command imports (Rasa) may give the root logger a handler of its own, and every
    line would print twice (tests turn it on for pytest's log capture)."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    if any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
        return
    logger.addHandler(ConsoleHandler())
    logger.setLevel(level)
    logger.propagate = propagate
