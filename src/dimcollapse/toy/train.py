"""Training the toy models: plain SGD on the mean of Eq. 2, several runs vectorised together.

:func:`train_toys` trains R compatible runs (same d, batch size, steps, loss form, seed, input
covariance, tracking and dtype; any layer count, ReLU flag, noise profile, learning rate,
temperature and initialisation) as one batched computation: the weights are an (R, L_max, d, d)
tensor, a run with fewer layers is padded on the input side with frozen identity layers (which
change nothing: multiplying by I is exact), and the gradients are the closed forms of Eq. 4
back-propagated by hand (checked against autograd in the tests), which is several times faster
than autograd at these sizes. Runs in one group share their random numbers: the same inputs and
the same standard-normal noise each step (scaled by each run's noise profile), so comparisons
between runs are paired. Every run's randomness depends only on its own seed: a run gives the
same numbers whether it is trained alone or beside others (up to floating-point reassociation).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dimcollapse.errors import UsageError
from dimcollapse.spectrum import covariance_spectrum
from dimcollapse.toy.analytics import analyze
from dimcollapse.toy.config import ToyConfig
from dimcollapse.toy.loss import (
    STREAM_DATA,
    STREAM_EVAL,
    STREAM_INIT,
    TORCH_DTYPES,
    embedding_gradients,
    init_weights,
    make_generator,
    sample_inputs,
)
from dimcollapse.toy.result import ToyResult


def train_toy(config: ToyConfig) -> ToyResult:
    """Train one toy model (see :class:`ToyConfig`) and run the analytics on it."""
    return train_toys([config])[0]


def _group_key(c: ToyConfig) -> tuple[Any, ...]:
    return (
        c.dim,
        c.batch_size,
        c.steps,
        c.loss,
        c.seed,
        c.input_cov,
        c.track_every,
        c.eval_samples,
        c.dtype,
    )


def train_toys(configs: Sequence[ToyConfig]) -> list[ToyResult]:
    """Train several toy models, batching compatible ones together; results in input order.

    Speed: the matrices are tiny (d = 16, N = 128), so torch's intra-op threads only add
    synchronisation; on a busy machine they can make a step ten times slower. The command line
    runs with ``torch.set_num_threads(1)`` (``--threads``); notebook users may want the same.
    """
    configs = [c.validate() for c in configs]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(_group_key(c), []).append(i)
    results: list[ToyResult | None] = [None] * len(configs)
    for idx in groups.values():
        for i, res in zip(idx, _train_group([configs[i] for i in idx])):
            results[i] = res
    return [r for r in results if r is not None]


@dataclass
class _RunStack:
    """R compatible runs as one batched model (R runs, L = the most layers, d dimensions).

    ``weights`` (R, L, d, d) in the training dtype, a run with fewer layers padded on the input
    side with frozen identity layers; ``inits`` each run's own (layers, d, d) float64 start;
    ``active`` (R, L) bool its real layers; ``relu_after`` (R, L) bool the layers a ReLU follows,
    ``relu_layers`` those where any run has one; ``lr`` (R, L, 1, 1) its learning rate (0 on
    padding); ``tau`` (R, 1, 1); ``noise`` (R, 1, d) its noise scale per input dimension;
    ``factor`` / ``factor64`` the input covariance factor in the training dtype / float64.
    """

    configs: list[ToyConfig]
    dtype: torch.dtype
    weights: torch.Tensor
    inits: list[np.ndarray]
    active: torch.Tensor
    relu_after: torch.Tensor
    relu_layers: list[int]
    lr: torch.Tensor
    tau: torch.Tensor
    noise: torch.Tensor
    factor: torch.Tensor | None
    factor64: torch.Tensor | None

    @property
    def base(self) -> ToyConfig:
        """The settings every run of the group shares (see :func:`_group_key`)."""
        return self.configs[0]


@dataclass
class _History:
    """The records of all R runs at the T tracked steps ``record_steps``.

    ``weight_sv`` (R, T, L, d), ``embedding_sv`` (R, T, d), ``alignment`` (R, T, L - 1, d, d)
    float32, ``loss`` (R, T) mean per-pair loss since the previous record; ``step_losses``
    (steps + 1, R) each step's summed loss in the training dtype.
    """

    record_steps: list[int]
    weight_sv: np.ndarray
    embedding_sv: np.ndarray
    alignment: np.ndarray
    loss: np.ndarray
    step_losses: torch.Tensor


def _train_group(configs: list[ToyConfig]) -> list[ToyResult]:
    t_start = time.perf_counter()
    runs = _stack_runs(configs)
    history = _new_history(runs)
    data_gen = make_generator(runs.base.seed, STREAM_DATA)
    eval_gen = make_generator(runs.base.seed, STREAM_EVAL)
    _record(runs, history, 0, 0, eval_gen)
    _train_steps(runs, history, data_gen, eval_gen)
    # at step 0: the loss of the first batch, evaluated before its update
    history.loss[:, 0] = history.step_losses[1].to(torch.float64).numpy() / runs.base.batch_size
    train_s = time.perf_counter() - t_start
    return [_result(runs, history, i, train_s) for i in range(len(configs))]


def _stack_runs(configs: list[ToyConfig]) -> _RunStack:
    """Each run's initial weights, masks and hyperparameters stacked along a leading R axis."""
    base = configs[0]
    dtype = TORCH_DTYPES[base.dtype]
    d, r = base.dim, len(configs)
    l_max = max(c.layers for c in configs)
    weights, inits = _stack_weights(configs, l_max)
    active = torch.zeros(r, l_max, dtype=torch.bool)
    relu_after = torch.zeros(r, l_max, dtype=torch.bool)
    for i, c in enumerate(configs):
        active[i, l_max - c.layers :] = True
        if c.relu:
            relu_after[i, l_max - c.layers : l_max - 1] = True
    lr = torch.tensor([c.lr for c in configs], dtype=dtype).view(r, 1, 1, 1) * active.to(
        dtype
    ).view(r, l_max, 1, 1)
    factor_np = base.input_factor()
    return _RunStack(
        configs=configs,
        dtype=dtype,
        weights=weights.to(dtype),
        inits=inits,
        active=active,
        relu_after=relu_after,
        relu_layers=[k for k in range(l_max) if bool(relu_after[:, k].any())],
        lr=lr,
        tau=torch.tensor([c.temperature for c in configs], dtype=dtype).view(r, 1, 1),
        noise=torch.tensor(np.stack([c.noise_scales() for c in configs]), dtype=dtype).view(
            r, 1, d
        ),
        factor=None if factor_np is None else torch.as_tensor(factor_np, dtype=dtype),
        factor64=None if factor_np is None else torch.as_tensor(factor_np, dtype=torch.float64),
    )


def _stack_weights(configs: list[ToyConfig], l_max: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    """(R, l_max, d, d) float64 initial weights, padded with identity layers on the input side,
    and each run's own (layers, d, d) initial weights."""
    d = configs[0].dim
    w = torch.eye(d, dtype=torch.float64).repeat(len(configs), l_max, 1, 1)
    inits = []
    for i, c in enumerate(configs):
        w0 = init_weights(c, make_generator(c.seed, STREAM_INIT))
        inits.append(w0.numpy().copy())
        w[i, l_max - c.layers :] = w0
    return w, inits


def _new_history(runs: _RunStack) -> _History:
    base = runs.base
    r, l_max, d = runs.weights.shape[:3]
    record_steps = sorted(set(range(0, base.steps + 1, base.track_every)) | {base.steps})
    t_count = len(record_steps)
    return _History(
        record_steps=record_steps,
        weight_sv=np.zeros((r, t_count, l_max, d)),
        embedding_sv=np.zeros((r, t_count, d)),
        alignment=np.zeros((r, t_count, max(l_max - 1, 0), d, d), dtype=np.float32),
        loss=np.zeros((r, t_count)),
        step_losses=torch.zeros(base.steps + 1, r, dtype=runs.dtype),
    )


def _record(
    runs: _RunStack, history: _History, k: int, step: int, eval_gen: torch.Generator
) -> None:
    """Fill record ``k`` (taken after ``step`` updates): spectra, alignment, mean loss."""
    w = runs.weights
    r, l_max, d = w.shape[:3]
    _check_finite(runs, step)
    w64 = w.to(torch.float64)
    u, s, vh = torch.linalg.svd(w64)
    history.weight_sv[:, k] = s.numpy()
    if l_max > 1:
        history.alignment[:, k] = (vh[:, 1:] @ u[:, :-1]).numpy()
    # The embeddings for the spectrum are computed in float64 whatever the training dtype:
    # collapsed directions sit 1e-8 and more below the leading ones.
    xe = sample_inputs(runs.base.eval_samples, d, eval_gen, runs.factor64, torch.float64)
    z = _forward(w64, xe.expand(r, -1, -1), runs.relu_after, runs.relu_layers)[0]
    for i in range(r):
        history.embedding_sv[i, k] = covariance_spectrum(z[i])
    if step == 0:
        history.loss[:, k] = np.nan
    else:
        prev = history.record_steps[k - 1]
        mean_sum = history.step_losses[prev + 1 : step + 1].to(torch.float64).mean(0).numpy()
        history.loss[:, k] = mean_sum / runs.base.batch_size


def _check_finite(runs: _RunStack, step: int) -> None:
    w = runs.weights
    if not bool(torch.isfinite(w).all()):
        bad = [i for i in range(w.shape[0]) if not bool(torch.isfinite(w[i]).all())]
        raise UsageError(
            f"toy training diverged by step {step} (non-finite weights, lr "
            f"{runs.configs[bad[0]].lr}); lower --lr"
        )


def _train_steps(
    runs: _RunStack, history: _History, data_gen: torch.Generator, eval_gen: torch.Generator
) -> None:
    """SGD on the mean of Eq. 2 for every run at once, recording at ``history.record_steps``."""
    base = runs.base
    n, d = base.batch_size, base.dim
    r, l_max = runs.weights.shape[:2]
    layers = list(runs.weights.unbind(1))  # views into the weights: updated in place
    lr_layers = list(runs.lr.unbind(1))
    trainable = [bool(runs.active[:, layer].any()) for layer in range(l_max)]
    relu_keep = {
        layer: ~runs.relu_after[:, layer].view(r, 1, 1) for layer in runs.relu_layers
    }  # True where the run has no ReLU after this layer
    noise_any = bool((runs.noise != 0).any())
    k = 1
    with torch.no_grad():
        for step in range(1, base.steps + 1):
            x = sample_inputs(n, d, data_gen, runs.factor, runs.dtype)
            eps = torch.randn(2 * n, d, generator=data_gen, dtype=runs.dtype)
            # (R, 2N, d): x + n1 then x + n2 (the noise draw happens even when it is zero)
            if noise_any:
                views = x.repeat(2, 1) + eps * runs.noise
            else:
                views = x.repeat(2, 1).expand(r, -1, -1)
            h, hs = _forward_layers(views, layers, relu_keep)
            loss_sum, g1, g2 = embedding_gradients(h[:, :n], h[:, n:], base.loss, runs.tau)
            delta = torch.cat([g1, g2], dim=1).div_(n)  # gradient of the mean loss on z
            _backprop_and_update(delta, hs, layers, lr_layers, trainable, relu_keep)
            history.step_losses[step] = loss_sum
            if k < len(history.record_steps) and step == history.record_steps[k]:
                _record(runs, history, k, step, eval_gen)
                k += 1


def _forward_layers(
    views: torch.Tensor, layers: list[torch.Tensor], relu_keep: dict[int, torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(R, 2N, d) views through the (R, d, d) layers -> embeddings, each layer's input."""
    hs = []
    h = views
    for layer, weight in enumerate(layers):
        hs.append(h)
        h = h @ weight.mT
        if layer in relu_keep:
            h = torch.where(relu_keep[layer], h, h.clamp_min(0))
    return h, hs


def _backprop_and_update(
    delta: torch.Tensor,
    hs: list[torch.Tensor],
    layers: list[torch.Tensor],
    lr_layers: list[torch.Tensor],
    trainable: list[bool],
    relu_keep: dict[int, torch.Tensor],
) -> None:
    """Back-propagate ``delta`` (the loss gradient on z) by hand and take each layer's SGD
    step, the last layer first (each layer's delta uses its weights before their update)."""
    for layer in range(len(layers) - 1, -1, -1):
        grad = delta.mT @ hs[layer] if trainable[layer] else None
        if layer > 0:
            delta = delta @ layers[layer]  # before this layer is updated
            if layer - 1 in relu_keep:
                delta = delta * ((hs[layer] > 0) | relu_keep[layer - 1])
        if grad is not None:
            layers[layer].sub_(grad.mul_(lr_layers[layer]))


def _result(runs: _RunStack, history: _History, i: int, train_s: float) -> ToyResult:
    """Run ``i``'s own layers and records, with the analytics on its final weights."""
    t0 = time.perf_counter()
    c = runs.configs[i]
    lo = runs.weights.shape[1] - c.layers
    w_final = runs.weights[i, lo:].to(torch.float64).numpy().copy()
    return ToyResult(
        config=c,
        steps=np.asarray(history.record_steps),
        loss=history.loss[i].copy(),
        weight_singular_values=history.weight_sv[i, :, lo:].copy(),
        embedding_singular_values=history.embedding_sv[i].copy(),
        alignment=history.alignment[i, :, lo:].copy() if c.layers > 1 else None,
        weights_init=runs.inits[i],
        weights=w_final,
        analytics=analyze(c, runs.inits[i], w_final),
        elapsed_s=train_s / len(runs.configs) + (time.perf_counter() - t0),
    )


def _forward(
    w: torch.Tensor, x: torch.Tensor, relu_after: torch.Tensor, relu_layers: list[int]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Batched forward: (R, L, d, d) weights, (R, M, d) inputs -> (R, M, d), layer inputs."""
    hs = []
    h = x
    r = w.shape[0]
    for layer in range(w.shape[1]):
        hs.append(h)
        h = h @ w[:, layer].mT
        if layer in relu_layers:
            h = torch.where(relu_after[:, layer].view(r, 1, 1), h.clamp_min(0), h)
    return h, hs
