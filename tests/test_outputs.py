"""All-or-nothing outputs: what a killed writer leaves, and the permissions of what is published."""
import os
import signal
import stat
import subprocess
import sys

from rasa_kd.formats.outputs import atomic_file, atomic_output_dir, recover_interrupted

KILLED_WRITER = """
import os, signal, sys
from rasa_kd.formats.outputs import atomic_output_dir
with atomic_output_dir(sys.argv[1], force=True) as tmp:
    (tmp / "new.txt").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sigkill_inside_the_block_keeps_the_previous_output(tmp_path):
    out = tmp_path / "package"
    with atomic_output_dir(out) as tmp:
        (tmp / "old.txt").write_text("complete")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert len(list(tmp_path.glob(".package.tmp-*"))) == 1  # hidden, and named after the dead writer
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["package"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def test_a_package_set_aside_by_a_killed_run_is_put_back(tmp_path):
    out, pid = tmp_path / "package", dead_pid()
    (tmp_path / f".package.old-{pid}").mkdir()
    (tmp_path / f".package.old-{pid}" / "weights").write_text("previous")
    (tmp_path / f".package.tmp-{pid}-x1").mkdir()
    (tmp_path / f".model.onnx.tmp-{pid}-x2.onnx").write_text("half")
    (tmp_path / f".package.tmp-{os.getpid()}-x3").mkdir()  # a live writer's: left alone
    recover_interrupted(out)
    recover_interrupted(tmp_path / "model.onnx")
    assert (out / "weights").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["package", f".package.tmp-{os.getpid()}-x3"])


def test_published_outputs_get_the_umask_permissions(tmp_path):
    old_mask = os.umask(0o022)
    try:
        with atomic_output_dir(tmp_path / "package") as tmp:
            (tmp / "inside.txt").write_text("x")
        with atomic_file(tmp_path / "package" / "model.onnx") as tmp:
            tmp.write_bytes(b"onnx")
    finally:
        os.umask(old_mask)
    mode = {name: stat.S_IMODE((tmp_path / "package" / name).stat().st_mode) for name in ("", "model.onnx")}
    assert mode == {"": 0o755, "model.onnx": 0o644}
