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
