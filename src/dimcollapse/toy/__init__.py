"""The theory lab: the linear toy models of sections 4 and 5 of Jing et al. (ICLR 2022).

A stack of L bias-free ``d x d`` linear layers (optionally with ReLU between them) trained with
plain SGD on InfoNCE (Eq. 2) over two additive-noise views of Gaussian inputs; every K steps the
singular values of each ``W_l``, the embedding spectrum (Eq. 1) and the alignment matrices
``A_l = V_{l+1}^T U_l`` are recorded, and at the end the paper's closed forms are checked
numerically (Lemma 2's ``X = Sigma0_hat - Sigma1_hat``, Lemmas 1 and 3 against autograd, the sign
of X's eigenvalues for Theorem 1, alignment for Theorem 2, Eq. 11 for Theorem 3).

Notebook use::

    from dimcollapse.toy import ToyConfig, train_toy, run_scenario
    res = train_toy(ToyConfig(layers=2, init="spectral", noise=1e-3, noise_dims=None, lr=1e-2))
    res.collapsed_dims(), res.analytics.alignment_diag_mean, res.summary()
    depth = run_scenario("depth", steps=3000)

Modules: :mod:`~dimcollapse.toy.config` (:class:`ToyConfig`, the defaults),
:mod:`~dimcollapse.toy.loss` (model, views, the loss of Eq. 2, closed-form embedding
gradients), :mod:`~dimcollapse.toy.analytics` (the paper's identities),
:mod:`~dimcollapse.toy.train` (batched SGD), :mod:`~dimcollapse.toy.result` (:class:`ToyResult`),
:mod:`~dimcollapse.toy.scenarios` (the named experiments' definitions),
:mod:`~dimcollapse.toy.scenario_runs` (running them), :mod:`~dimcollapse.toy.figures`,
:mod:`~dimcollapse.toy.output` (the JSON and figure files, one line per run, NaN warnings),
:mod:`~dimcollapse.toy.options` (the command line's options, help text and parsing).
Names are imported lazily so that ``import dimcollapse.toy.config`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ToyConfig": "config",
    "LOSSES": "config",
    "INITS": "config",
    "MAX_LAYERS": "config",
    "ToyResult": "result",
    "train_toy": "train",
    "train_toys": "train",
    "ToyAnalytics": "analytics",
    "analyze": "analytics",
    "x_matrix": "analytics",
    "sigma_hats": "analytics",
    "softmax_alphas": "analytics",
    "lemma2_max_abs_err": "analytics",
    "closed_form_gradients": "analytics",
    "autograd_gradients": "analytics",
    "gradient_rel_err": "analytics",
    "alignment_matrices": "analytics",
    "alignment_diag_mean": "analytics",
    "alignment_weighted_diag_mean": "analytics",
    "eq11_check": "analytics",
    "Scenario": "scenarios",
    "SCENARIOS": "scenarios",
    "SCENARIO_NAMES": "scenarios",
    "scenario_config": "scenarios",
    "scenario_runs": "scenarios",
    "ScenarioResult": "scenario_runs",
    "run_scenario": "scenario_runs",
    "run_scenarios": "scenario_runs",
    "default_rel_tol": "scenario_runs",
    "scenario_figure": "figures",
    "combined_figure": "figures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dimcollapse.toy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dimcollapse.toy.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
