"""The docs cover what the code offers: the command reference is generated from the registry
and current, every command is in it, and every component config key is in docs/components.md."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_command_reference_is_current():
    status = subprocess.run([sys.executable, str(ROOT / "scripts" / "command_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr


def test_every_command_and_flag_is_in_the_reference():
    from rasa_kd import cli
    from rasa_kd.commands import COMMANDS

    reference = (DOCS / "commands.md").read_text(encoding="utf-8")
    subparsers = cli.build_parser(all_commands=True)._subparsers._group_actions[0].choices
    for name in COMMANDS:
        assert f"## `rasa-kd {name}`" in reference
        for action in subparsers[name]._actions:
            assert all(flag in reference for flag in action.option_strings)


@pytest.mark.parametrize("component", ["StudentIntentClassifier", "StudentFeaturizer"])
def test_every_component_config_key_is_documented(component):
    from rasa_kd import components

    guide = (DOCS / "components.md").read_text(encoding="utf-8")
    keys = getattr(components, component).get_default_config()
    missing = [key for key in keys if f"`{key}`" not in guide]
    assert missing == []


def test_the_readme_stays_short_and_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250

    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        prose = re.sub(r"`[^`]*`", "", page.read_text(encoding="utf-8"))  # `[text](entity)` is Rasa syntax
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_committed_results_record_repo_relative_paths():
    import run  # benchmarks/run.py

    absolute = re.compile(r'"/(?:home|root|work|tmp|Users|mnt|opt)/')
    files = [path for path in (ROOT / "benchmarks" / "results").rglob("*") if path.suffix in (".json", ".md")]
    assert files and [str(path) for path in files if absolute.search(path.read_text(encoding="utf-8"))] == []
    inside = {"model": str(ROOT / "benchmarks" / "work" / "student"), "config": f"student: {ROOT}/build/s\n",
              "other": ["/elsewhere/file", 3]}
    assert run.repo_relative(inside) == {"model": "benchmarks/work/student", "config": "student: build/s\n",
                                         "other": ["/elsewhere/file", 3]}
