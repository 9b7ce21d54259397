"""The command line as a whole: every command exists, helps, and fails with one error line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import assert_usage_error

from dimcollapse.cli import COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_exists_and_explains_its_options(cli, name):
    assert importlib.util.find_spec(f"dimcollapse.commands.{name}") is not None
    code, out, _ = cli(name, "--help")
    assert code == 0
    assert "usage: dimcollapse" in out and "--" in out


def test_python_dash_m_and_no_command():
    proc = subprocess.run(
        [sys.executable, "-m", "dimcollapse", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and all(name in proc.stdout for name in COMMANDS)
    proc = subprocess.run(
        [sys.executable, "-m", "dimcollapse"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2


def test_unknown_command_is_one_error_line(cli):
    assert_usage_error(cli("collapse"), "invalid choice")
