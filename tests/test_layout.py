"""The package layout: sub-packages import only from layers below them; MLflow only in track/."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "daeflow"

# Lowest first; a module may import from its own unit and from units in lower layers.
LAYERS = (
    ("errors",),
    ("runtime",),
    ("plugin",),  # with daeflow/__init__.py, which re-exports the plugin API
    ("config", "architectures", "objectives"),
    ("data",),
    ("quality",),
    ("track",),
    ("infer",),
    ("train",),
    ("workflow",),
    ("cli",),
    ("testing", "mlflow_flavor", "__main__"),
)
LAYER = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


ROOT = "plugin"  # what `import daeflow` gives: version, hookimpl and the spec classes


def unit_of(path: Path) -> str:
    """The first part of a module's path under daeflow/ ('data' for daeflow/data/pairs.py)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ROOT if parts == ("__init__",) else parts[0]


def imported_units(tree: ast.AST):
    """Every daeflow unit a module imports, at the top or inside functions, with the line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "daeflow":
                    yield (parts[1] if len(parts) > 1 else ROOT), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "daeflow":
                continue
            if len(parts) > 1:
                yield parts[1], node.lineno
            else:
                for alias in node.names:
                    yield (alias.name if alias.name in LAYER else ROOT), node.lineno


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {unit_of(path) for path in modules()}
    assert units <= set(LAYER), units - set(LAYER)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in modules():
        unit = unit_of(path)
        for imported, line in imported_units(ast.parse(path.read_text())):
            if imported != unit and LAYER[imported] >= LAYER[unit]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert upward == []


def test_the_layer_check_catches_an_upward_import(tmp_path):
    tree = ast.parse("def f():\n    from daeflow.workflow.run import run\n")
    ((imported, _),) = imported_units(tree)
    assert LAYER[imported] > LAYER["data"]


def test_mlflow_is_imported_only_under_track():
    outside = []
    for path in modules():
        if unit_of(path) == "track":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "mlflow" for name in names):
                outside.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert outside == []


def _units_named(text: str) -> set[str]:
    """The units a layout text names: `errors.py`, `runtime/`, `config, architectures`, ..."""
    import re

    found = set()
    for line in text.splitlines():
        stripped = line.strip()
        head = re.split(r"\s{2,}", stripped, maxsplit=1)[0] if stripped else ""
        for word in re.split(r",\s*", head):
            name = word.removesuffix(".py").removesuffix("/")
            if name in LAYER or name == "plugin":
                found.add(name)
    return found


def test_docs_package_docstring_and_layers_name_the_same_units():
    """The layout block of docs/development.md, daeflow/__init__.py's docstring and LAYERS
    agree."""
    readme = (PACKAGE.parent / "docs" / "development.md").read_text()
    block = readme[
        readme.index("```\ndaeflow/\n") : readme.index("```", readme.index("daeflow/\n"))
    ]
    docstring = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    units = set(LAYER)
    assert _units_named(block) == units, units ^ _units_named(block)
    assert _units_named(docstring) == units, units ^ _units_named(docstring)


def test_the_units_check_sees_a_missing_unit():
    assert _units_named("  errors.py   x\n  runtime/   y") == {"errors", "runtime"}


def test_every_sub_package_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring.splitlines()) == 1, init


def test_every_third_party_import_is_a_declared_dependency():
    """A plain `pip install daeflow` must have what the package imports.

    A feature extra (`tune`, `export`) counts: its import is guarded by a one-line install hint.
    The `test` extra does not.
    """
    import importlib.metadata as md
    import re
    import sys
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[ <>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in project["dependencies"]
        + project["optional-dependencies"]["tune"]
        + project["optional-dependencies"]["export"]
    }
    owners = md.packages_distributions()
    missing = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "daeflow":
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({path.relative_to(PACKAGE.parent)})")
    assert missing == set()
