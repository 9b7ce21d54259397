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


def _run(*cmd: object, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


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
    installed = _run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    assert installed.returncode == 0, installed.stderr
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": deps, "PATH": str(env_dir / "bin"), "HOME": str(tmp_path)}
    where = _run(py, "-c", "import dimcollapse; print(dimcollapse.__file__)", env=env, cwd=tmp_path)
    where = where.stdout
    assert str(env_dir) in where, where  # imported from the wheel, not from the checkout
    helped = _run(env_dir / "bin" / "dimcollapse", "--help", env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "spectrum" in helped.stdout and "reproduce" in helped.stdout
    version = _run(env_dir / "bin" / "dimcollapse", "--version", env=env, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("dimcollapse ")
