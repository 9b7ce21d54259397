"""Combine the per-seed results of one reproduction run into means with 95% intervals.

The reproduction trains each method once per seed. :func:`aggregate_seeds` turns the list of
per-seed stage results (each as :mod:`dimcollapse.reproduce` writes it) into one result of the
same shape, so that every reader of ``reproduce.json`` keeps working:

* scalar metrics become the **mean over seeds** (``probe.full.top1``, ``knn_top1_k20``,
  ``representation.rankme``, ``collapsed_dims``, ...), and the main ones get a 95% Student-t
  interval beside them: ``top1_ci95``, ``knn_top1_k20_ci95``, ``rankme_ci95``,
  ``collapsed_dims_ci95`` (``None`` with one seed; :mod:`dimcollapse.stats`);
* ``singular_values`` become the element-wise **geometric mean** over seeds (the spectra are
  compared on a log scale, as in the paper's figures); each seed's own spectrum stays in
  ``seeds``;
* each spectrum summary (``representation``, ``embedding`` and their row-normalised
  ``*_normalized`` twins) also gets its collapsed tail at every threshold of
  :data:`~dimcollapse.spectrum.metrics.COLLAPSE_THRESHOLDS`: ``collapse_thresholds`` and
  ``collapsed_at`` (the mean count over seeds at each), computed from each seed's own spectrum;
* a probe's chosen ``weight_decay`` is not averaged: it stays when every seed chose the same,
  is None otherwise, and ``weight_decay_per_seed`` lists the choices;
* ``history`` becomes the per-epoch mean of each logged number;
* ``seconds`` become the **sum** over seeds (the compute the run cost), not one seed's time;
* ``seeds`` keeps every seed's full result, in seed order, and ``seed_values`` the seeds.

Claims are judged from the per-seed values in ``seeds`` (paired across methods), never from
the means alone: see :func:`dimcollapse.report.check_claims`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.spectrum.metrics import COLLAPSE_THRESHOLDS, collapsed_counts
from dimcollapse.stats import interval95, mean

#: Probe fields that get an interval beside their mean.
PROBE_CI_FIELDS = ("top1", "knn_top1_k20", "knn_top1_k200")
#: Spectrum-summary fields that get an interval beside their mean.
SPECTRUM_CI_FIELDS = ("rankme", "collapsed_dims", "entropy_rank")
#: The spectrum summaries of a run's result (raw and row-normalised vectors).
RUN_SPACES = ("representation", "embedding", "representation_normalized", "embedding_normalized")
#: Those of a baseline (no embedding).
BASELINE_SPACES = ("representation", "representation_normalized")
#: The baselines a stage may hold, in the report's order.
BASELINE_KEYS = ("pixels", "pixels-pca", "random")
#: The probe rows of a baseline: the main (labelled subset) and the all-labels one.
BASELINE_PROBES = ("probe", "probe_all_labels")
#: Probe fields that are choices, not measurements: never averaged over seeds.
CHOSEN_FIELDS = ("weight_decay",)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _mean_dict(items: Sequence[Mapping[str, Any]], ci_fields: Sequence[str]) -> dict[str, Any]:
    """Field-wise mean of numeric fields; other fields from the first item; intervals added."""
    out = copy.deepcopy(dict(items[0]))
    for key, first in items[0].items():
        values = [it.get(key) for it in items]
        if key in CHOSEN_FIELDS:
            out[key] = first if all(v == first for v in values) else None
            out[f"{key}_per_seed"] = values
        elif _is_number(first) and all(_is_number(v) for v in values):
            # equal values (dimensions, image counts) keep their type; the rest are averaged
            out[key] = first if all(v == first for v in values) else mean(values)
            if key in ci_fields:
                out[f"{key}_ci95"] = interval95(values)
        elif key == "singular_values" and all(isinstance(v, list) for v in values):
            out[key] = geometric_mean_spectrum(values)
    return out


def _mean_spectrum(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A spectrum summary's mean over seeds, with its collapsed tail at every threshold."""
    out = _mean_dict(items, SPECTRUM_CI_FIELDS)
    spectra = [it.get("singular_values") for it in items]
    if all(isinstance(sv, list) and sv for sv in spectra):
        counts = [collapsed_counts(sv, COLLAPSE_THRESHOLDS) for sv in spectra]
        out["collapse_thresholds"] = list(COLLAPSE_THRESHOLDS)
        out["collapsed_at"] = [
            mean([c[i] for c in counts]) for i in range(len(COLLAPSE_THRESHOLDS))
        ]
    return out


def geometric_mean_spectrum(spectra: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise geometric mean of equally long spectra (exact zeros stay zero)."""
    n = min(len(s) for s in spectra)
    result = []
    for i in range(n):
        vals = [float(s[i]) for s in spectra]
        if any(v <= 0 for v in vals):
            result.append(0.0)
        else:
            result.append(math.exp(sum(math.log(v) for v in vals) / len(vals)))
    return result


def mean_history(histories: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per-epoch mean of each number over the seeds that logged that epoch."""
    by_epoch: dict[int, list[Mapping[str, Any]]] = {}
    for hist in histories:
        for row in hist:
            if "epoch" in row:
                by_epoch.setdefault(int(row["epoch"]), []).append(row)
    out = []
    for epoch in sorted(by_epoch):
        rows = by_epoch[epoch]
        merged: dict[str, Any] = {"epoch": epoch}
        for key in rows[0]:
            vals = [r.get(key) for r in rows]
            if key != "epoch" and all(_is_number(v) for v in vals):
                merged[key] = mean(vals)
        out.append(merged)
    return out


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One run's per-seed stage results (in seed order) as means, intervals and ``seeds``."""
    if not results:
        raise ValueError("no seeds to aggregate")
    out = copy.deepcopy(dict(results[0]))
    out["probe"] = {
        name: _mean_dict([r["probe"][name] for r in results], PROBE_CI_FIELDS)
        for name in results[0]["probe"]
        if all(name in r["probe"] for r in results)
    }
    for space in RUN_SPACES:
        if all(isinstance(r.get(space), Mapping) for r in results):
            out[space] = _mean_spectrum([r[space] for r in results])
    if all("history" in r for r in results):
        out["history"] = mean_history([r["history"] for r in results])
    if all("seconds" in r for r in results):
        out["seconds"] = {
            k: sum(float(r["seconds"].get(k) or 0.0) for r in results)
            for k in results[0]["seconds"]
        }
    out["seed_values"] = [r.get("seed") for r in results]
    out["seeds"] = [copy.deepcopy(dict(r)) for r in results]
    out.pop("run_dir", None)
    out["run_dirs"] = [r.get("run_dir") for r in results]
    out.pop("reused", None)
    return out


def aggregate_baselines(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The baselines stage per seed (``{"pixels": ..., "pixels-pca": ..., "random": ...}``) as
    means and seeds."""
    out: dict[str, Any] = {}
    for key in BASELINE_KEYS:
        per_seed = [r[key] for r in results if isinstance(r.get(key), Mapping)]
        if len(per_seed) != len(results) or not per_seed:
            continue
        merged = copy.deepcopy(dict(per_seed[0]))
        for row in BASELINE_PROBES:
            if all(isinstance(p.get(row), Mapping) for p in per_seed):
                merged[row] = _mean_dict([p[row] for p in per_seed], PROBE_CI_FIELDS)
        for space in BASELINE_SPACES:
            if all(isinstance(p.get(space), Mapping) for p in per_seed):
                merged[space] = _mean_spectrum([p[space] for p in per_seed])
        merged["seconds"] = sum(float(p.get("seconds") or 0.0) for p in per_seed)
        merged["seeds"] = [copy.deepcopy(dict(p)) for p in per_seed]
        out[key] = merged
    out["seconds"] = sum(float(r.get("seconds") or 0.0) for r in results)
    return out


def per_seed(result: Mapping[str, Any], path: Sequence[str]) -> list[float] | None:
    """The value at ``path`` (e.g. ``("probe", "full", "top1")``) in each seed, or None when a
    seed lacks it. A result without ``seeds`` (one old-style run) counts as one seed."""
    seeds = result.get("seeds") or [result]
    values = []
    for s in seeds:
        node: Any = s
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        if not _is_number(node):
            return None
        values.append(float(node))
    return values
