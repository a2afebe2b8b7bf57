"""The package's shape: no import circle between its modules, no module too long to read."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "coughclf"
LONGEST_MODULE = 600


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, modules):
    """The package modules ``path`` imports anywhere in its body (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from coughclf import datasets" imports the submodule; "from coughclf.x import f" the module x
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("coughclf."):
                found.add(name)
    return found


def import_graph():
    """``{module: the package modules it imports}`` for every module of the package (packages excluded
    as targets: importing ``coughclf.models`` for its registry is not a dependency on each model)."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: _imports(path, paths) - {name} for name, path in paths.items()}


def _cycle(graph):
    """One import circle of ``graph`` as a list of modules, or None (depth-first search)."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_circle_and_accepts_a_tree():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circle():
    graph = import_graph()
    # The training hub's old circle: these must not import their dispatchers.
    for task_module in ("coughclf.speech", "coughclf.classification", "coughclf.fitting"):
        assert not graph[task_module] & {"coughclf.train", "coughclf.evaluate"}, task_module
    # Packages import their members to register them: a package → member edge is no circle.
    without_registries = {name: {t for t in targets if not t.startswith(name + ".")}
                          for name, targets in graph.items()}
    assert _cycle(without_registries) is None


def test_no_module_is_over_600_lines():
    long = {_module_name(path): count for path in PACKAGE.rglob("*.py")
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST_MODULE}
    assert not long, f"split these modules: {long}"


def test_every_docstring_example_is_collected_by_the_doctest_run():
    """``>>>`` examples run only where setup.cfg's pytest testpaths (with --doctest-modules) reach."""
    import configparser

    settings = configparser.ConfigParser()
    settings.read(ROOT / "setup.cfg")
    pytest_settings = settings["tool:pytest"]
    assert "--doctest-modules" in pytest_settings["addopts"]
    collected = [ROOT / path for path in pytest_settings["testpaths"].split()]
    with_examples = [path for path in PACKAGE.rglob("*.py") if ">>> " in path.read_text(encoding="utf-8")]
    assert with_examples, "no docstring examples found: is the search looking in the right place?"
    outside = [str(path) for path in with_examples if not any(path.is_relative_to(root) for root in collected)]
    assert not outside, f"these modules' >>> examples never run; add their package to testpaths: {outside}"
