"""Shared test helpers."""

from __future__ import annotations

import pytest

from dimcollapse.cli import main


@pytest.fixture
def cli(capsys):
    """Run ``dimcollapse ARGS...`` in-process; return (exit status, stdout, stderr)."""

    def _run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse --help / usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def assert_usage_error(result: tuple[int, str, str], *fragments: str) -> None:
    """Exit status 2, exactly one stderr line starting with 'error:', no traceback."""
    code, _out, err = result
    assert code == 2, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="session")
def tiny_reproduction(tmp_path_factory):
    """One tiny reproduction (tiny_runs.TINY_REPRODUCE) per session, shared by tests/report and
    tests/reproduce: (its --out directory, the manifest it returned, its wall seconds)."""
    import time

    from tiny_runs import TINY_REPRODUCE

    from dimcollapse.reproduce import ReproduceSettings, reproduce

    out = tmp_path_factory.mktemp("reproduce") / "report"
    t0 = time.perf_counter()
    manifest = reproduce(ReproduceSettings(out=str(out), **TINY_REPRODUCE))
    return out, manifest, time.perf_counter() - t0


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run faster on one thread, and OpenMP threads oversubscribe a busy
    2-core machine (measured 5-30x slowdowns); the library itself leaves threads alone."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fashion_mnist_or_skip() -> None:
    """Skip a test that needs the Debian Fashion-MNIST files when they are absent, except under
    ``CI=true``, where their absence fails the test: CI must not pass with the real data missing."""
    import os
    from pathlib import Path

    from dimcollapse.data.formats import FORMATS

    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    names += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    root = Path(FORMATS["fashion-mnist"].default_dir)
    if all((root / f"{n}.gz").is_file() or (root / n).is_file() for n in names):
        return
    message = (
        f"Fashion-MNIST files absent from {root} "
        "(apt-get update && apt-get install -y dataset-fashion-mnist)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI=true requires them")
    pytest.skip(message)
