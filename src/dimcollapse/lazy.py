"""Packages whose names are imported on first use (PEP 562), so that importing one torch-free
module of a package (``dimcollapse.data.formats``, ``dimcollapse.bench.defaults``, ...) does not
run every module the package's ``__init__`` names. The command line's ``--help`` relies on it.

Imports elsewhere sit at the top of each module. The few inside a function carry their reason
as a comment on the line, or above a run of imports (``tests/test_imports.py`` checks it, and
that the imports between modules and between packages form no circle), one of:

* ``# torch-free --help: ...``: the module is read while ``dimcollapse [COMMAND] --help``
  builds the parser (``cli``, ``commands/*``, ``config``, ``rundir``, ``fileio``, ``options``,
  ``choices``, ``data.formats``, ``toy.config``/``options``, ...), which imports no torch;
* ``# lean --help: ...``: the same path, kept free of another package it does not need;
* ``# torchvision-free ...``: ``dimcollapse spectrum FILE`` (benchmarks/bench_cli_start.py),
  ``toy`` and ``toy images`` never import torchvision;
* ``# matplotlib-free ...``: ``spectrum`` without ``--plot`` and ``toy --no-figures`` draw
  nothing (and ``plots.pyplot`` picks Agg only when a figure is drawn, not on import);
* ``# optional: ...``: an extra (timm, transformers, lightning, omegaconf) or what some
  platforms or torch builds lack (fcntl, torch.distributed.nn);
* ``# import circle: A -> B -> A``: none today;
* ``# signals first: ...``: ``cli`` imports little before ``main()`` guards Ctrl-C.

What they save, measured with ``python -X importtime`` (median of 9 fresh processes, the
module's cumulative time; 2 shared cores, 2026-12-07): torch 1440 ms; torchvision 1240 ms on
top of torch (2650 ms with it); matplotlib 120 ms + pyplot 355 ms (470 ms), matplotlib.figure
480 ms with matplotlib; scipy.stats 840 ms; scikit-learn's datasets 1030 ms; tqdm 78 ms; yaml
30 ms; numpy 106 ms (read by ``--help`` anyway); timm 1820 ms, transformers 700 ms, lightning
4890 ms on top of torch; rundir with fileio 23 ms after ``cli``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to the
    module that defines it; the module is imported when the name is first read, and the name then
    stays in the package's namespace."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(exports))

    return __getattr__, __dir__
