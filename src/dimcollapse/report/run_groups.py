"""Which runs of a reproduction are the paper's and which go beyond it, by their group.

The paper's report (every section, claim, figure and table about Jing et al.) reads the paper's
runs only: those of the groups planned for the paper (:data:`dimcollapse.methods.PLANNED_GROUPS`:
Table 1 and the ablations of section 6.3) and of DirectCLR's d0 sweep (:data:`D0_SWEEP_GROUP`);
a run that records no group (a ``reproduce.json`` from before groups) is the paper's. The runs
beyond the paper are those of :data:`dimcollapse.methods.EXTRA_GROUPS`
(``"extra"``: VICReg and Barlow Twins, trained with ``reproduce --extras``); only
:mod:`dimcollapse.report.extras` shows them. A run of any other group is in neither.

Runs are selected by their ``group`` (and ``method``), never by their name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dimcollapse.manifest import Manifest
from dimcollapse.methods import (
    D0_SWEEP_GROUP,
    EXTRA_GROUPS,
    PLANNED_GROUPS,
    RECIPES,
    methods_in_group,
)

#: The groups whose runs the paper's report reads.
PAPER_GROUPS: tuple[str, ...] = (*PLANNED_GROUPS, D0_SWEEP_GROUP)

Runs = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class RunSplit:
    """A manifest's runs by name, in its order: the paper's, and those beyond the paper."""

    paper: dict[str, Mapping[str, Any]]
    extra: dict[str, Mapping[str, Any]]


def split_runs(manifest: Manifest | Mapping[str, Any]) -> RunSplit:
    """The paper's runs (groups :data:`PAPER_GROUPS`, or none recorded) and the extra runs
    (groups :data:`EXTRA_GROUPS`) of ``manifest``."""
    runs = Manifest.of(manifest).runs
    return RunSplit(
        paper={n: r for n, r in runs.items() if r.get("group") in (None, *PAPER_GROUPS)},
        extra={n: r for n, r in runs.items() if r.get("group") in EXTRA_GROUPS},
    )


def paper_manifest(manifest: Manifest | Mapping[str, Any]) -> Manifest:
    """``manifest`` as the paper's report reads it: the same, with the paper's runs only."""
    manifest = Manifest.of(manifest)
    return dataclasses.replace(manifest, runs=split_runs(manifest).paper)


def runs_of_groups(runs: Runs, groups: tuple[str, ...]) -> list[Mapping[str, Any]]:
    """The runs of each of ``groups`` in turn, each group's in the order of
    :func:`~dimcollapse.methods.methods_in_group` (a run without a group counts in its
    method's)."""
    out = []
    for group in groups:
        for method in methods_in_group(group):
            out += [
                run
                for run in runs.values()
                if run.get("method") == method
                and (run.get("group") or RECIPES[method].group) == group
            ]
    return out
