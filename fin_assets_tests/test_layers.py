"""Import direction between the layers of the package, read from the source with `ast`:

- fin_assets/lib/: plain Python; imports neither dagster (nor any dagster_* package) nor
  fin_assets.defs, fin_assets.cli, fin_assets.definitions;
- fin_assets/defs/: Dagster definitions; imports neither fin_assets.cli nor fin_assets.definitions;
- fin_assets/definitions.py: does not import fin_assets.cli;
- fin_assets/cli/: on top, imports anything.

Every import counts, at any depth (function-local, under `if TYPE_CHECKING`, in try blocks),
relative ones resolved against the module's package, `from fin_assets import cli` as an import
of fin_assets.cli, and importlib.import_module / __import__ of a literal name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from fin_assets_tests.helpers.paths import REPO

PACKAGE = "fin_assets"

DAGSTER = ("dagster",)  # the top-level name, and any dagster_* distribution module
# Layer (module prefix) -> module prefixes it must not import.
RULES: dict[str, tuple[str, ...]] = {
    "fin_assets.lib": (*DAGSTER, "fin_assets.defs", "fin_assets.cli", "fin_assets.definitions"),
    "fin_assets.defs": ("fin_assets.cli", "fin_assets.definitions"),
    "fin_assets.definitions": ("fin_assets.cli",),
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported} ({self.rule} must not)"


def module_name(root: Path, path: Path) -> str:
    """fin_assets/lib/batch/prices.py -> fin_assets.lib.batch.prices (root: the folder that
    holds the package); a package's __init__.py is the package itself."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _forbidden(name: str, prefix: str) -> bool:
    if prefix == "dagster":
        top = name.split(".")[0]
        return top == "dagster" or top.startswith("dagster_")
    return _within(name, prefix)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([target] if target else [])])


def imported_names(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module name) of every import in `source`, wherever it is in the tree. For
    `from X import a`, both X and X.a (a may be a submodule)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if (
                called in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.append((node.lineno, node.args[0].value))
    return found


def check_module(source: str, module: str, is_package: bool = False) -> list[Violation]:
    violations = []
    for layer, forbidden in RULES.items():
        if not _within(module, layer):
            continue
        for line, name in imported_names(source, module, is_package):
            for prefix in forbidden:
                if _forbidden(name, prefix):
                    violations.append(Violation(module, line, name, layer))
    return violations


def check_tree(root: Path) -> tuple[list[str], list[Violation]]:
    """Every module of the package under `root`, and what breaks the rules."""
    modules: list[str] = []
    violations: list[Violation] = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        module = module_name(root, path)
        modules.append(module)
        violations += check_module(path.read_text(), module, path.name == "__init__.py")
    return modules, violations


def test_the_package_keeps_its_import_directions():
    modules, violations = check_tree(REPO)
    # The check must see what it checks: every layer, and the whole package.
    assert len(modules) > 40, modules
    for layer in RULES:
        assert any(_within(m, layer) for m in modules), f"no module of {layer} inspected"
    assert any(_within(m, "fin_assets.cli") for m in modules)
    assert not violations, "\n".join(map(str, violations))


# --- the checker catches each kind of violation -------------------------------------------------

BREAKS = [
    # (module, is_package, source, the import it must report)
    ("fin_assets.lib.prices", False, "import dagster as dg\n", "dagster"),
    ("fin_assets.lib.prices", False, "from dagster_shared.record import replace\n", "dagster_"),
    (
        "fin_assets.lib.prices",
        False,
        "def f():\n    if True:\n        from fin_assets.defs.batch import assets\n",
        "fin_assets.defs.batch",
    ),
    ("fin_assets.lib.batch.storage", False, "from ...cli import batch\n", "fin_assets.cli"),
    ("fin_assets.lib", True, "from .. import definitions\n", "fin_assets.definitions"),
    ("fin_assets.lib.x", False, "from fin_assets import defs\n", "fin_assets.defs"),
    (
        "fin_assets.lib.x",
        False,
        "import importlib\nM = importlib.import_module('fin_assets.cli.batch')\n",
        "fin_assets.cli.batch",
    ),
    (
        "fin_assets.defs.batch.assets",
        False,
        "class A:\n    def run(self):\n        import fin_assets.cli.batch\n",
        "fin_assets.cli.batch",
    ),
    ("fin_assets.defs.batch.assets", False, "from ...definitions import defs\n", "fin_assets."),
    (
        "fin_assets.defs.search",
        True,
        "try:\n    from fin_assets.cli import main\nexcept ImportError:\n    pass\n",
        "fin_assets.cli",
    ),
    ("fin_assets.definitions", False, "from fin_assets.cli.dev import run\n", "fin_assets.cli"),
    ("fin_assets.definitions", False, "from .cli import main\n", "fin_assets.cli"),
]


@pytest.mark.parametrize(("module", "is_package", "source", "reported"), BREAKS)
def test_the_checker_reports_a_violation(module, is_package, source, reported):
    violations = check_module(source, module, is_package)
    assert violations, f"{module}: {source!r} passed the check"
    assert any(v.imported.startswith(reported) for v in violations), violations


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("fin_assets.lib.batch.prices", "from fin_assets.lib import settings\nimport pandas\n"),
        ("fin_assets.lib.batch.prices", "from ..symbols import parse\n"),
        (
            "fin_assets.defs.batch.assets",
            "import dagster as dg\nfrom fin_assets.lib import config\n",
        ),
        ("fin_assets.definitions", "import fin_assets.defs\nimport dagster as dg\n"),
        ("fin_assets.cli.batch", "from fin_assets.definitions import build_definitions\n"),
        # A name that only starts like a forbidden one.
        ("fin_assets.lib.x", "import dagsterish\nimport fin_assets.definitions_doc\n"),
    ],
)
def test_allowed_imports_pass(module, source):
    assert check_module(source, module) == []


def test_a_tree_that_breaks_each_rule_is_caught(tmp_path: Path):
    files = {
        "fin_assets/__init__.py": "",
        "fin_assets/lib/__init__.py": "",
        "fin_assets/lib/ok.py": "import json\n",
        "fin_assets/lib/bad.py": "def later():\n    import dagster\n",
        "fin_assets/defs/__init__.py": "",
        "fin_assets/defs/flow/__init__.py": "from ...cli import main\n",
        "fin_assets/definitions.py": "import fin_assets.cli\n",
        "fin_assets/cli/__init__.py": "import dagster\nfrom fin_assets.definitions import defs\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules, violations = check_tree(tmp_path)
    assert len(modules) == len(files)
    assert {(v.module, v.rule) for v in violations} == {
        ("fin_assets.lib.bad", "fin_assets.lib"),
        ("fin_assets.defs.flow", "fin_assets.defs"),
        ("fin_assets.definitions", "fin_assets.definitions"),
    }


def test_importing_every_lib_module_loads_no_dagster():
    """The same rule seen at run time: a fresh interpreter that imports all of fin_assets.lib
    has no dagster and nothing of the layers above it in sys.modules."""
    modules, _ = check_tree(REPO)
    lib = [m for m in modules if _within(m, "fin_assets.lib")]
    script = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {lib!r}:
            importlib.import_module(name)
        bad = sorted(
            m for m in sys.modules
            if m.split(".")[0] == "dagster" or m.split(".")[0].startswith("dagster_")
            or m.startswith(("fin_assets.defs", "fin_assets.cli", "fin_assets.definitions"))
        )
        print(len({lib!r}), bad)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=1) == [str(len(lib)), "[]\n"], result.stdout
