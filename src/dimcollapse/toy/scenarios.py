"""The paper's toy experiments as named scenarios: their definitions and defaults (no torch)
(sections 4 and 5, Figs. 4, 5 and 6).

Each scenario is a set of training runs that share a seed (hence their inputs and noise draws):

* ``strong-aug`` (section 4, Theorem 1, Corollary 1): one linear layer, strong noise on half the
  input dimensions against weak noise; the strong run's noisy directions shrink, X of Eq. 6 has
  negative eigenvalues; the weak run keeps every direction.
* ``two-layer`` (section 5, Figs. 4 and 5): W2 W1 from the non-degenerate initialisation
  ``U diag(exp(-0.35 k)) V^T`` of the paper's code with tiny noise: the leading singular
  directions grow, align (``|V2^T U1| -> I`` on them) and the rest stay behind (Theorem 3).
* ``depth`` (Fig. 6a): final embedding spectra for L = 1, 2, 3, 4 from random initialisations;
  the number of collapsed dimensions grows with L and is zero at L = 1.
* ``relu`` (Fig. 6b): L = 2 with and without a ReLU between the layers.

Why these defaults (measured with d = 16, batch 128, 10k steps, several seeds): under Eq. 2 the
embedding's scale is free, so once the embeddings spread out ``alpha_ii -> 1`` and X shrinks
towards 0 (the loss goes to 0); the noisy directions of ``strong-aug`` then stop shrinking at
roughly 1e-3 of the leading variance instead of vanishing as Theorem 1 (which holds X fixed)
predicts. ``strong-aug`` therefore uses noise 3 (weak 0.1), lr 1e-2, an orthogonal initialisation
(an isotropic start, so any anisotropy is learned) and counts a dimension as collapsed below 1e-2
of the leading variance (``rel_tol``); the other scenarios keep the toolkit's default tolerance
:data:`dimcollapse.spectrum.DEFAULT_REL_TOL`, where their collapsed directions sit far below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dimcollapse.errors import UsageError
from dimcollapse.toy.config import MAX_LAYERS, ToyConfig

#: The scenario names in the order ``all`` runs and draws them.
SCENARIO_NAMES = ("strong-aug", "two-layer", "depth", "relu")


@dataclass(frozen=True)
class Scenario:
    """A named toy experiment: its default :class:`ToyConfig` and how it varies it."""

    name: str
    title: str
    paper: str
    config: ToyConfig
    #: Collapse tolerance (``sigma_k < rel_tol * sigma_1``); None: the toolkit's
    #: :data:`dimcollapse.spectrum.DEFAULT_REL_TOL`.
    rel_tol: float | None
    #: strong-aug: the weak run's noise; depth: the layer counts; relu: nothing.
    weak_noise: float | None = None
    depths: tuple[int, ...] | None = None


SCENARIOS: dict[str, Scenario] = {
    "strong-aug": Scenario(
        name="strong-aug",
        title="Strong augmentation, one linear layer",
        paper="section 4, Theorem 1, Corollary 1",
        config=ToyConfig(layers=1, lr=1e-2, noise=3.0, noise_dims=8, init="orthogonal"),
        rel_tol=1e-2,
        weak_noise=0.1,
    ),
    "two-layer": Scenario(
        name="two-layer",
        title="Two linear layers: alignment and singular value dynamics",
        paper="section 5, Theorems 2 and 3, Figs. 4 and 5",
        config=ToyConfig(layers=2, lr=1e-2, noise=1e-3, noise_dims=None, init="spectral"),
        rel_tol=None,
    ),
    "depth": Scenario(
        name="depth",
        title="More layers, more collapse",
        paper="section 5.4, Fig. 6a",
        config=ToyConfig(layers=1, lr=1e-2, noise=1e-3, noise_dims=None, init="random"),
        rel_tol=None,
        depths=(1, 2, 3, 4),
    ),
    "relu": Scenario(
        name="relu",
        title="Two layers with and without ReLU",
        paper="section 5.4, Fig. 6b",
        config=ToyConfig(layers=2, lr=1e-2, noise=1e-3, noise_dims=None, init="spectral"),
        rel_tol=None,
    ),
}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; UsageError for an unknown one."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UsageError(
            f"unknown toy scenario {name!r}; choose from {', '.join(SCENARIO_NAMES)}"
        ) from None


def scenario_config(name: str, **overrides: Any) -> ToyConfig:
    """The scenario's default :class:`ToyConfig` with ``overrides`` applied (not yet validated).

    For ``strong-aug`` the noise sits on the last ``dim // 2`` dimensions unless ``noise_dims``
    is given (8 of 16 as in the paper's code).
    """
    sc = get_scenario(name)
    fields = set(ToyConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown ToyConfig fields: {', '.join(unknown)}")
    cfg = sc.config.replace(**overrides)
    if name == "strong-aug" and "noise_dims" not in overrides and "dim" in overrides:
        cfg = cfg.replace(noise_dims=cfg.dim // 2)
    return cfg


def scenario_runs(
    name: str,
    config: ToyConfig,
    *,
    weak_noise: float | None = None,
    depths: Sequence[int] | None = None,
) -> list[tuple[dict[str, Any], ToyConfig]]:
    """The (labels, config) of each training run of a scenario built on ``config``."""
    sc = get_scenario(name)
    if name == "strong-aug":
        weak = sc.weak_noise if weak_noise is None else weak_noise
        return [
            ({"run": "strong"}, config),
            ({"run": "weak"}, config.replace(noise=float(weak))),
        ]
    if name == "two-layer":
        if config.layers < 2:
            raise UsageError(f"two-layer needs --layers >= 2 (alignment), got {config.layers}")
        return [({"run": f"L={config.layers}"}, config)]
    if name == "depth":
        chosen = tuple(sc.depths or ()) if depths is None else tuple(int(k) for k in depths)
        if not chosen:
            raise UsageError("--depths needs at least one layer count")
        for k in chosen:
            if not 1 <= k <= MAX_LAYERS:
                raise UsageError(f"--depths values must be between 1 and {MAX_LAYERS}, got {k}")
        return [({"run": f"L={k}"}, config.replace(layers=k, relu=False)) for k in chosen]
    if name == "relu":
        if config.layers < 2:
            raise UsageError(f"relu needs --layers >= 2 (ReLU between layers), got {config.layers}")
        return [
            ({"run": "linear"}, config.replace(relu=False)),
            ({"run": "relu"}, config.replace(relu=True)),
        ]
    raise UsageError(f"unknown toy scenario {name!r}")  # pragma: no cover - get_scenario checks
