"""The library's shape: it logs instead of printing, so that Rasa's log level applies inside
`rasa train` and only the CLI (and the scripts) print."""
import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = [*sorted((ROOT / "rasa_kd").rglob("*.py")), *sorted((ROOT / "components").glob("*.py"))]
PRINTING = {ROOT / "rasa_kd" / "cli.py"}  # the command line prints its parse errors and help


def print_calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]


def test_the_library_does_not_print():
    found = {str(path.relative_to(ROOT)): print_calls(path) for path in LIBRARY if path not in PRINTING}
    assert {path: lines for path, lines in found.items() if lines} == {}


def test_the_log_level_decides_what_a_stage_says(toy_nlu, tmp_path, capsys):
    from rasa_kd.nlu_data import split

    library = logging.getLogger("rasa_kd")
    level = library.level
    try:
        library.setLevel(logging.WARNING)  # what `rasa train --quiet` sets
        capsys.readouterr()
        split.split_from_options(split.SplitOptions(nlu=toy_nlu["train"], out=tmp_path / "quiet"))
        assert capsys.readouterr().out == ""
        library.setLevel(logging.INFO)
        split.split_from_options(split.SplitOptions(nlu=toy_nlu["train"], out=tmp_path / "loud"))
        assert f"-> {tmp_path / 'loud'}" in capsys.readouterr().out
    finally:
        library.setLevel(level)


# The layers, lowest first: a module may import (at module level) only from its own layer or below,
# and no chain of imports, module-level or inside functions, may come back to where it started.
LAYERS = [
    ("foundations", {"rasa_kd", "rasa_kd.errors", "rasa_kd.console", "rasa_kd.options", "rasa_kd.commands",
                     "rasa_kd.distributed", "rasa_kd.formats", "rasa_kd.formats.outputs",
                     "rasa_kd.formats.digests", "rasa_kd.nlu_data",
                     "rasa_kd.teachers", "rasa_kd.transfer", "rasa_kd.evaluation", "rasa_kd.evaluation.metrics",
                     "rasa_kd.students.config", "rasa_kd.students.losses", "rasa_kd.students.unknown",
                     "rasa_kd.transfer.outliers",
                     "rasa_kd.nlu_data.scripts", "rasa_kd.nlu_data.entity_tags"}),
    ("formats, configs and models", {
        "rasa_kd.formats.nlu_yaml", "rasa_kd.formats.transfer_set", "rasa_kd.formats.student_package",
        "rasa_kd.teachers.folder", "rasa_kd.teachers.resources", "rasa_kd.teachers.install",
        "rasa_kd.teachers.use_multilingual", "rasa_kd.teachers.choice", "rasa_kd.teachers.pooling",
        "rasa_kd.teachers.tag_head",
        "rasa_kd.students", "rasa_kd.students.distil_options", "rasa_kd.students.presets",
        "rasa_kd.students.tokenizers", "rasa_kd.students.bilstm", "rasa_kd.students.small_bert",
        "rasa_kd.students.runtime", "rasa_kd.students.data", "rasa_kd.students.build", "rasa_kd.students.training"}),
    ("stages", {"rasa_kd.nlu_data.convert", "rasa_kd.nlu_data.split", "rasa_kd.teachers.fine_tune",
                "rasa_kd.transfer.augment", "rasa_kd.transfer.lm_augment", "rasa_kd.transfer.label",
                "rasa_kd.students.distil", "rasa_kd.students.export", "rasa_kd.students.fallback",
                "rasa_kd.evaluation.calibration",
                "rasa_kd.evaluation.evaluate", "rasa_kd.evaluation.analyse"}),
    ("the pipeline", {"rasa_kd.pipeline"}),
    ("faces: the CLI and the Rasa components", {"rasa_kd.cli", "rasa_kd.components",
                                                 "rasa_kd.components.any_language_tokenizer",
                                                 "rasa_kd.components.student_featurizer",
                                                 "rasa_kd.components.student_intent_classifier",
                                                 "rasa_kd.components.student_storage",
                                                 "rasa_kd.components.student_training"}),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "components":
        parts = ["rasa_kd", "components", *parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(nodes, known):
    """The rasa_kd modules the import statements name (`from a import b` names a.b when b is a module)."""
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rasa_kd"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    return found


def import_graph():
    """module -> (module-level imports, all imports) among the library's modules."""
    trees = {module_name(path): ast.parse(path.read_text(encoding="utf-8")) for path in LIBRARY}
    known = set(trees)
    graph = {}
    for name, tree in trees.items():
        top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        every = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        # a package's own parent is imported by Python anyway; it is not a dependency
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = (imported_modules(top, known) - {name} - parents,
                       imported_modules(every, known) - {name} - parents)
    return graph


def test_every_module_has_a_layer():
    layered = set().union(*(modules for _, modules in LAYERS))
    assert set(import_graph()) <= layered


def test_no_module_level_import_of_a_higher_layer():
    rank = {module: index for index, (_, modules) in enumerate(LAYERS) for module in modules}
    wrong = [f"{module} ({LAYERS[rank[module]][0]}) imports {target} ({LAYERS[rank[target]][0]})"
             for module, (top, _) in import_graph().items() if module in rank
             for target in sorted(top) if target in rank and rank[target] > rank[module]]
    assert wrong == []


def test_no_import_cycles():
    graph = {module: every for module, (_, every) in import_graph().items()}
    cycles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_a_command_prints_each_line_once_when_the_root_logger_has_a_handler(toy_nlu, tmp_path):
    """Rasa, imported by a command, may configure the root logger: the CLI's lines must not
    then print a second time through it."""
    import subprocess
    import sys

    code = ("import logging, sys; logging.basicConfig(level=logging.INFO); from rasa_kd import cli; "
            "sys.exit(cli.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "split", "--nlu", str(toy_nlu["train"]), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(f"-> {tmp_path / 'out'}") == 1 and "rasa_kd" not in done.stderr


# The folders a newcomer sees, in the order the data flows through them.
STEP_PACKAGES = ["nlu_data", "teachers", "transfer", "students", "evaluation"]
TOP_LEVEL = {"__init__", "cli", "commands", "console", "distributed", "errors", "options", "pipeline"}


def test_the_tree_shows_the_path():
    library = ROOT / "rasa_kd"
    packages = {path.parent.name for path in library.glob("*/__init__.py")}
    assert packages == {*STEP_PACKAGES, "formats"}
    assert {path.stem for path in library.glob("*.py")} == TOP_LEVEL


def test_each_command_runs_from_its_step_package():
    from rasa_kd.commands import COMMANDS

    homes = {name: command.module.split(".")[1] for name, command in COMMANDS.items() if name != "pipeline"}
    assert set(homes.values()) <= set(STEP_PACKAGES)
    assert COMMANDS["pipeline"].module == "rasa_kd.pipeline"


def test_serving_does_not_load_the_training_stack():
    """`rasa run` with an ONNX student imports the components; torch and transformers stay out."""
    import subprocess
    import sys

    code = "import sys, rasa_kd.components; print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
