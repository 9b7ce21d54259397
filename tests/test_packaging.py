"""The wheel: builds, installs into a fresh virtual environment, and its command runs there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs(tmp_path):
    pytest.importorskip("build")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "*-output"))
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("dimcollapse-*.whl")
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # the wheel alone, without its dependencies (torch is gigabytes): they come from this
    # environment's site-packages on PYTHONPATH, the package itself only from the wheel
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": deps, "PATH": str(env_dir / "bin"), "HOME": str(tmp_path)}
    where = subprocess.run(
        [str(py), "-c", "import dimcollapse, sys; print(dimcollapse.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert str(env_dir) in where, where  # imported from the wheel, not from the checkout
    out = subprocess.run(
        [str(env_dir / "bin" / "dimcollapse"), "--help"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert "spectrum" in out and "reproduce" in out
    version = subprocess.run(
        [str(env_dir / "bin" / "dimcollapse"), "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert version.returncode == 0 and version.stdout.startswith("dimcollapse ")
