"""A reproduction's record, below both its producer and its readers.

``reproduce.json`` as types and the layout of a reproduction's output directory
(:mod:`.file`). :mod:`dimcollapse.reproduce` writes it and :mod:`dimcollapse.report` reads
it; both import this package, and it imports neither (no arrow runs back up). Torch-free.
"""

from __future__ import annotations

from dimcollapse.manifest.file import (
    COMPLETE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    RUNNING,
    Execution,
    Manifest,
    Paper,
    ReproduceLayout,
    Settings,
    Timing,
)

__all__ = [
    "COMPLETE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "RUNNING",
    "Execution",
    "Manifest",
    "Paper",
    "ReproduceLayout",
    "Settings",
    "Timing",
]
