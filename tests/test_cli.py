"""The ``fastssl`` command line: sub-commands found by module, ``convert`` equal to ``python -m converters``."""
from __future__ import annotations

import subprocess
import sys

import pytest

from fastssl_loader import DatasetReader
from fastssl_loader.cli import main
from fastssl_loader.commands import command_modules

from .conftest import REPO


def test_every_command_module_registers_itself(capsys):
    names = [module.__name__.rsplit(".", 1)[1] for module in command_modules()]
    assert "convert" in names
    for name in names:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0 and f"usage: fastssl {name}" in capsys.readouterr().out


def test_convert_writes_the_same_file_as_the_converters_shim(tiny_imagefolder, tmp_path):
    args = ["imagefolder", str(tiny_imagefolder), "--mode", "raw", "--workers", "0", "--no-progress"]
    assert main(["convert", *args[:2], str(tmp_path / "cli.fssl"), *args[2:]]) == 0
    shim = subprocess.run([sys.executable, "-m", "converters", *args[:2], str(tmp_path / "shim.fssl"), *args[2:]],
                          cwd=REPO, capture_output=True, text=True)
    assert shim.returncode == 0, shim.stderr
    assert (tmp_path / "cli.fssl").read_bytes() == (tmp_path / "shim.fssl").read_bytes()
    assert len(DatasetReader(tmp_path / "cli.fssl")) == 12


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["convert", "numpy", str(tmp_path / "missing.npz"), str(tmp_path / "o.fssl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing.npz" in err and err.count("\n") == 1


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2 and "COMMAND" in capsys.readouterr().err
