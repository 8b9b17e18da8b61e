"""Packages that cost seconds to import are imported on first use, never when a module loads.

Every CLI process, run, multiprocess step and UI load imports the definitions; a module-level
import of one of these packages anywhere under fund_pipeline/ makes all of them pay for it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fund_pipeline

# Imported inside the functions that use them (plots, clustering, the expectations check, the hedge QP).
LAZY_PACKAGES = ("matplotlib", "sklearn", "great_expectations", "cvxpy")


def module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, package) of every import executed when the module loads: its body, including if/try blocks."""
    found: list[tuple[int, str]] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.If | ast.Try | ast.With):
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                pending += getattr(node, field, [])
        elif isinstance(node, ast.ExceptHandler):
            pending += node.body
    return found


def test_the_scan_sees_module_level_imports_and_ignores_function_bodies():
    source = (
        "import matplotlib.pyplot as plt\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import sklearn\n"
        "try:\n    from cvxpy import Problem\nexcept ImportError:\n    import great_expectations\n"
        "def f():\n    import sklearn.cluster\n"
    )
    assert sorted(module_level_imports(ast.parse(source))) == [
        (1, "matplotlib"),
        (2, "typing"),
        (6, "cvxpy"),
        (8, "great_expectations"),
    ]


def test_no_module_imports_a_heavy_package_when_it_loads():
    root = Path(fund_pipeline.__file__).parent
    offenders = [
        f"{path.relative_to(root.parent)}:{line} imports {package}"
        for path in sorted(root.rglob("*.py"))
        for line, package in module_level_imports(ast.parse(path.read_text(), str(path)))
        if package in LAZY_PACKAGES
    ]
    assert offenders == []


def test_loading_the_definitions_imports_none_of_them_nor_scipy_signal():
    """What a process pays that only loads the definitions (the UI, a sensor tick, every run's start)."""
    probe = (
        "import sys\n"
        "from fund_pipeline.definitions import build_definitions\n"
        "build_definitions()\n"
        f"heavy = {[*LAZY_PACKAGES, 'scipy.signal', 'scipy.stats']!r}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
