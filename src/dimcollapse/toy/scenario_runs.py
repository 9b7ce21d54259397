"""Running the toy scenarios of :mod:`dimcollapse.toy.scenarios` and collecting their results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dimcollapse.spectrum import DEFAULT_REL_TOL
from dimcollapse.toy.config import ToyConfig
from dimcollapse.toy.result import ToyResult
from dimcollapse.toy.scenarios import (
    SCENARIOS,
    Scenario,
    get_scenario,
    scenario_config,
    scenario_runs,
)
from dimcollapse.toy.train import train_toys

__all__ = ["ScenarioResult", "default_rel_tol", "run_scenario", "run_scenarios"]


def default_rel_tol(name: str) -> float:
    """The collapse tolerance a scenario reports with by default."""
    tol = get_scenario(name).rel_tol
    return DEFAULT_REL_TOL if tol is None else tol


@dataclass
class ScenarioResult:
    """The trained runs of one scenario; ``rel_tol`` is the collapse tolerance it reports with."""

    name: str
    runs: list[ToyResult]
    rel_tol: float
    labels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scenario(self) -> Scenario:
        """The :class:`Scenario` definition."""
        return SCENARIOS[self.name]

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per run (what ``--json`` prints)."""
        return [
            run.summary(self.rel_tol, scenario=self.name, **labels)
            for run, labels in zip(self.runs, self.labels)
        ]

    def run(self, label: str) -> ToyResult:
        """The run whose ``run`` label is ``label`` (e.g. ``"strong"``, ``"L=3"``, ``"relu"``)."""
        for res, labels in zip(self.runs, self.labels):
            if labels.get("run") == label:
                return res
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        """The scenario's JSON summary file: its description, tolerance and every run's record."""
        sc = self.scenario
        return {
            "scenario": self.name,
            "title": sc.title,
            "paper": sc.paper,
            "rel_tol": self.rel_tol,
            "runs": self.records(),
        }


def run_scenarios(
    names: Sequence[str],
    *,
    rel_tol: float | None = None,
    weak_noise: float | None = None,
    depths: Sequence[int] | None = None,
    **overrides: Any,
) -> list[ScenarioResult]:
    """Train several scenarios at once (runs with equal configs are trained once, compatible
    runs are batched together); ``overrides`` are :class:`ToyConfig` fields applied to each."""
    plans = []
    configs: list[ToyConfig] = []
    for name in names:
        cfg = scenario_config(name, **overrides)
        runs = scenario_runs(name, cfg, weak_noise=weak_noise, depths=depths)
        idx = []
        for _labels, c in runs:
            c.validate()
            if c not in configs:
                configs.append(c)
            idx.append(configs.index(c))
        plans.append((name, runs, idx))
    trained = train_toys(configs)
    out = []
    for name, runs, idx in plans:
        tol = default_rel_tol(name) if rel_tol is None else float(rel_tol)
        out.append(
            ScenarioResult(
                name=name,
                runs=[trained[i] for i in idx],
                rel_tol=tol,
                labels=[labels for labels, _ in runs],
            )
        )
    return out


def run_scenario(
    name: str,
    *,
    rel_tol: float | None = None,
    weak_noise: float | None = None,
    depths: Sequence[int] | None = None,
    **overrides: Any,
) -> ScenarioResult:
    """Train one scenario. ``overrides`` are :class:`ToyConfig` fields, e.g. ``steps=2000, seed=1``.

    Example (a notebook)::

        from dimcollapse.toy import run_scenario
        res = run_scenario("depth", steps=3000)
        [r["collapsed_dims"] for r in res.records()]
    """
    return run_scenarios(
        [name], rel_tol=rel_tol, weak_noise=weak_noise, depths=depths, **overrides
    )[0]
