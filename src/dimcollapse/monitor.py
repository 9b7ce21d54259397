"""Collapse monitoring for any training loop: stream named tensors, get the paper's metrics.

A :class:`CollapseMonitor` keeps one :class:`~dimcollapse.spectrum.SpectrumAccumulator` per
name (float64 sums, so memory is O(d^2) per name whatever the number of rows) and returns, on
:meth:`~CollapseMonitor.compute`, every metric of :func:`dimcollapse.spectrum.summarize`: the
singular values of the covariance of Eq. 1, collapsed dimensions (sigma_k < 1e-5 sigma_1),
RankMe, the entropy rank, alpha-ReQ and the dimensions holding 90% / 99% of the variance.
Under ``torch.distributed`` it merges the accumulators of every rank first, so every rank gets
the same numbers, those of all rows seen anywhere.

Plain loop::

    mon = CollapseMonitor()
    for x, _ in loader:
        r = backbone(x); z = projector(r)
        mon.update("r", r); mon.update("z", z)       # detached, any device
    metrics = mon.compute()                          # {"r": {...}, "z": {...}}; mon.reset()

Without touching the training code, forward hooks do the updates::

    with watch(model, {"r": "backbone", "z": "projector"}) as mon:
        for x, _ in loader:
            model(x)
    print(mon.compute()["z"]["collapsed_dims"])

Tensors of shape ``(B, C, H, W)`` are global-average-pooled to ``(B, C)``, ``(B, T, C)`` token
sequences averaged over T, and anything else flattened to ``(B, -1)``.
:mod:`dimcollapse.lightning` wraps the same in a PyTorch Lightning callback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dimcollapse.errors import UsageError
from dimcollapse.spectrum import DEFAULT_REL_TOL, SpectrumAccumulator

#: The metrics a logger gets by default (``collapse/<name>/<metric>``).
LOGGED_METRICS = (
    "rankme",
    "collapsed_dims",
    "dead_dims",
    "cliff_decades",
    "entropy_rank",
    "dims_90",
)


def as_rows(x: Tensor) -> Tensor:
    """``(B, d)`` rows of a feature tensor: spatial maps pooled, tokens averaged, rest flattened."""
    if isinstance(x, (tuple, list)):
        x = x[0]
    if not isinstance(x, Tensor):
        raise UsageError(f"can only monitor tensors, got {type(x).__name__}")
    x = x.detach()
    if x.ndim == 4:
        return x.float().mean(dim=(2, 3))
    if x.ndim == 3:
        return x.float().mean(dim=1)
    if x.ndim == 1:
        return x.reshape(-1, 1)
    return x.reshape(x.shape[0], -1)


class CollapseMonitor:
    """Named streams of feature rows and their collapse metrics (merged across ranks).

    ``collapsed_dims`` is the cliff rule (:func:`dimcollapse.spectrum.metrics.cliff_collapse`),
    dead coordinates apart in ``dead_dims``. ``rel_tol``: the secondary threshold count
    (``below_rel_tol``) and alpha-ReQ's cut, relative to sigma_1.
    ``normalize``: L2-normalise rows first (as the paper's ``spectrum.py``). ``max_rows``: stop
    adding rows to a name after this many (per process), to bound the cost of monitoring
    training outputs. ``device``: where the sums live (default: each tensor's own device).
    ``precision``: of each batch's outer products (sums are float64 always); the default
    ``float64`` keeps RankMe exact for float32 or bf16 features, whose float32 products leave
    collapsed directions at the square root of float32's rounding (RankMe off by ~1e-4 here).
    """

    def __init__(
        self,
        *,
        rel_tol: float = DEFAULT_REL_TOL,
        normalize: bool = False,
        max_rows: int | None = None,
        device: str | torch.device | None = None,
        precision: str = "float64",
    ) -> None:
        if not 0.0 < rel_tol < 1.0:
            raise UsageError(f"rel_tol must be between 0 and 1, got {rel_tol}")
        if max_rows is not None and max_rows < 2:
            raise UsageError(f"max_rows must be at least 2, got {max_rows}")
        self.rel_tol = rel_tol
        self.normalize = normalize
        self.max_rows = max_rows
        self.device = device
        self.precision = precision
        self._acc: dict[str, SpectrumAccumulator] = {}

    @property
    def names(self) -> list[str]:
        return list(self._acc)

    def rows(self, name: str) -> int:
        """Rows added to ``name`` in this process."""
        acc = self._acc.get(name)
        return 0 if acc is None else acc.n

    @torch.no_grad()
    def update(self, name: str, x: Tensor) -> None:
        """Add a batch of ``name``'s features (``(B, d)``, or a map / tokens; see module doc)."""
        rows = as_rows(x)
        acc = self._acc.get(name)
        if acc is None:
            acc = self._acc[name] = SpectrumAccumulator(
                normalize=self.normalize, device=self.device, precision=self.precision
            )
        if self.max_rows is not None:
            room = self.max_rows - acc.n
            if room <= 0:
                return
            rows = rows[:room]
        acc.update(rows)

    def reset(self) -> None:
        """Forget every row (e.g. at the start of an epoch)."""
        self._acc.clear()

    def compute(self, *, sync: bool = True) -> dict[str, dict[str, Any]]:
        """``{name: metrics}`` of all rows seen (by every rank when ``sync`` and distributed).

        Every rank must call it (it is a collective under ``torch.distributed``); names seen by
        no rank are absent; a name with fewer than 2 rows in all raises ``UsageError``.
        """
        accs = self._merged() if sync and _distributed() else dict(self._acc)
        return {name: acc.summary(self.rel_tol).to_dict() for name, acc in sorted(accs.items())}

    def _merged(self) -> dict[str, SpectrumAccumulator]:
        local = {name: acc.state_dict() for name, acc in self._acc.items()}
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, local)
        merged: dict[str, SpectrumAccumulator] = {}
        for states in gathered:  # rank order: the same sums, in the same order, on every rank
            for name, state in states.items():
                part = SpectrumAccumulator.from_state_dict(state, normalize=self.normalize)
                if name not in merged:
                    merged[name] = SpectrumAccumulator(normalize=self.normalize, device="cpu")
                merged[name].merge(part)
        return merged


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Watch:
    """Forward hooks that feed named modules' outputs to a :class:`CollapseMonitor`.

    Use as a context manager, or call :meth:`remove`. ``enabled`` pauses the updates (e.g.
    during validation) without removing the hooks.
    """

    def __init__(
        self,
        model: nn.Module,
        modules: Mapping[str, str],
        monitor: CollapseMonitor | None = None,
    ) -> None:
        self.monitor = monitor if monitor is not None else CollapseMonitor()
        self.enabled = True
        available = dict(model.named_modules())
        self._handles = []
        for name, path in modules.items():
            if path not in available:
                close = difflib.get_close_matches(path, [n for n in available if n], n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UsageError(f"watch: no module {path!r} in the model{hint}")
            self._handles.append(available[path].register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self.enabled:
                self.monitor.update(name, output)

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> CollapseMonitor:
        return self.monitor

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def watch(
    model: nn.Module, modules: Mapping[str, str], monitor: CollapseMonitor | None = None
) -> Watch:
    """Feed the outputs of ``model``'s named submodules (``{"z": "projector"}``) to a monitor.

    Returns a :class:`Watch`; ``with watch(model, {...}) as mon:`` removes the hooks on exit.
    """
    return Watch(model, modules, monitor)


def flat_metrics(
    computed: Mapping[str, Mapping[str, Any]], metrics: tuple[str, ...] = LOGGED_METRICS
) -> dict[str, float]:
    """``{"collapse/<name>/<metric>": value}`` for a logger, from :meth:`CollapseMonitor.compute`."""
    out = {}
    for name, summary in computed.items():
        for metric in metrics:
            value = summary.get(metric)
            if isinstance(value, (list, tuple)):  # dead_dims: their count
                value = len(value)
            if value is not None:
                out[f"collapse/{name}/{metric}"] = float(value)
    return out


def iter_batches(loader: Any) -> Iterator[Any]:
    """The inputs of a loader's batches: ``x`` of ``(x, y, ...)`` tuples, else the batch."""
    for batch in loader:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch
