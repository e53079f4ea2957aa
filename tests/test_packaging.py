"""Install truth: the library imports only what setup.py requires, and the wheel holds only fastssl_loader."""
from __future__ import annotations

import ast
import importlib.util
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from .conftest import REPO

IMPORT_TO_DISTRIBUTION = {"cv2": "opencv-python-headless", "PIL": "pillow"}


def _setup_keyword(name: str) -> Any:
    """A keyword argument setup.py passes to setuptools.setup (setup.py runs with setup() captured)."""
    captured: dict[str, Any] = {}
    with mock.patch("setuptools.setup", lambda **kwargs: captured.update(kwargs)):
        runpy.run_path(str(REPO / "setup.py"))
    return captured[name]


def _distribution(requirement: str) -> str:
    for separator in "<>=!~[; ":
        requirement = requirement.split(separator, 1)[0]
    return requirement.lower()


# Library modules that exist for an optional extra: importing them without it is a clear ImportError naming it.
OPTIONAL_MODULES = {"fastssl_loader/lightning.py": "lightning"}


def _imports(package: Path) -> list[tuple[str, str, bool]]:
    """(top-level module, file, lazy) for every import of ``package``; lazy = inside a function body."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        lazy_nodes = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for inner in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("fastssl_loader", "__future__"):
                    found.append((top, str(path.relative_to(REPO)), id(node) in lazy_nodes))
    return found


def _dist(module: str) -> str:
    return IMPORT_TO_DISTRIBUTION.get(module, module).lower()


def test_library_imports_only_required_distributions():
    """``import fastssl_loader`` needs only install_requires: a module-level import of anything else is allowed
    only in a module that exists for an extra; imports inside functions (used by one feature) may come from
    an extra; and every required distribution is really imported at module level somewhere."""
    required = {_distribution(r) for r in _setup_keyword("install_requires")}
    extras = {name: {_distribution(r) for r in reqs} for name, reqs in _setup_keyword("extras_require").items()}
    optional = set().union(*extras.values())
    wrong = {}
    for module, where, lazy in _imports(REPO / "fastssl_loader"):
        allowed = required | (optional if lazy else extras.get(OPTIONAL_MODULES.get(where, ""), set()))
        if _dist(module) not in allowed and not (module == "pytorch_lightning" and "lightning" in allowed):
            wrong[module] = where
    assert not wrong, f"imported by the library but neither required nor in the right extra: {wrong}"
    eager = {_dist(module) for module, where, lazy in _imports(REPO / "fastssl_loader")
             if not lazy and where not in OPTIONAL_MODULES}
    unused = required - eager
    assert not unused, f"install_requires lists distributions the library never imports: {unused}"


def test_dev_extra_covers_the_tools_of_tests_benches_and_trainer():
    extras = {name: {_distribution(r) for r in reqs} for name, reqs in _setup_keyword("extras_require").items()}
    assert {"pyyaml", "build", "pytest"} <= extras["dev"]
    assert extras["train"] | extras["bench"] <= extras["dev"]


@pytest.mark.slow
def test_wheel_holds_only_the_library(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("wheel_smoke", REPO / ".ci" / "wheel_smoke.py")
    wheel_smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wheel_smoke)
    (wheel,) = tmp_path.glob("*.whl")
    wheel_smoke.check_wheel_contents(wheel)
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("fastssl_loader-0.1.0.dist-info/entry_points.txt").decode()
    assert "fastssl = fastssl_loader.cli:main" in entry_points
