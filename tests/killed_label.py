"""`rasa-kd label` that dies like a killed process (exit status 75, no clean-up) once it has
written N shards in this run: `python tests/killed_label.py N label --teacher ...`.

The kill lives here, in the tests, not as a switch in the library."""
import os
import sys

from rasa_kd import cli
from rasa_kd.transfer import label

EXIT_STATUS = 75


def die_after(shards: int) -> None:
    write_shard, written = label.write_shard, []

    def write_then_die(*args, **kwargs):
        write_shard(*args, **kwargs)
        written.append(1)
        if len(written) >= shards:
            os._exit(EXIT_STATUS)

    label.write_shard = write_then_die


if __name__ == "__main__":
    die_after(int(sys.argv[1]))
    sys.exit(cli.main(sys.argv[2:]))
