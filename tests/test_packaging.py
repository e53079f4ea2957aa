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


def _imported_top_levels(package: Path) -> dict[str, str]:
    """Every top-level module any file of ``package`` imports (at any depth), mapped to one file that does."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_library_imports_only_required_distributions():
    required = {_distribution(r) for r in _setup_keyword("install_requires")}
    imported = _imported_top_levels(REPO / "fastssl_loader")
    third_party = {name: where for name, where in imported.items()
                   if name not in sys.stdlib_module_names and name not in ("fastssl_loader", "__future__")}
    missing = {name: where for name, where in third_party.items()
               if IMPORT_TO_DISTRIBUTION.get(name, name).lower() not in required}
    assert not missing, f"imported by the library but not in install_requires: {missing}"
    unused = required - {IMPORT_TO_DISTRIBUTION.get(name, name).lower() for name in third_party}
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
