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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dimcollapse.errors import UsageError
from dimcollapse.spectrum import DEFAULT_REL_TOL, collapsed_dims, covariance_spectrum
from dimcollapse.toy.analytics import ToyAnalytics, analyze
from dimcollapse.toy.config import ToyConfig
from dimcollapse.toy.models import (
    STREAM_DATA,
    STREAM_EVAL,
    STREAM_INIT,
    TORCH_DTYPES,
    embedding_gradients,
    init_weights,
    make_generator,
    sample_inputs,
)


@dataclass
class ToyResult:
    """One trained toy model and its tracked history.

    Shapes (T tracked steps, L layers, d dimensions): ``steps`` (T,) the step of each record,
    0 = initialisation, the last = ``config.steps``; ``loss`` (T,) the mean per-pair training loss
    over the updates since the previous record (at step 0: the first batch, before any update);
    ``weight_singular_values`` (T, L, d) descending singular values of each W_l;
    ``embedding_singular_values`` (T, d) the Eq. 1 covariance spectrum of the embeddings of
    ``eval_samples`` fresh clean inputs; ``alignment`` (T, L-1, d, d) the matrices
    ``A_l = V_{l+1}^T U_l`` (None for L = 1); ``weights_init``, ``weights`` (L, d, d) float64.
    """

    config: ToyConfig
    steps: np.ndarray
    loss: np.ndarray
    weight_singular_values: np.ndarray
    embedding_singular_values: np.ndarray
    alignment: np.ndarray | None
    weights_init: np.ndarray
    weights: np.ndarray
    analytics: ToyAnalytics
    elapsed_s: float = 0.0
    labels: dict[str, Any] = field(default_factory=dict)

    def collapsed_dims(self, rel_tol: float = DEFAULT_REL_TOL) -> int:
        """Collapsed embedding dimensions at the end (:func:`dimcollapse.spectrum.collapsed_dims`)."""
        return collapsed_dims(self.embedding_singular_values[-1], rel_tol)

    def collapsed_dims_history(self, rel_tol: float = DEFAULT_REL_TOL) -> np.ndarray:
        """(T,) collapsed embedding dimensions at every record."""
        return np.array([collapsed_dims(s, rel_tol) for s in self.embedding_singular_values])

    def summary(self, rel_tol: float = DEFAULT_REL_TOL, **extra: Any) -> dict[str, Any]:
        """A JSON-ready record of the run (the ``--json`` line), ``extra`` keys first."""
        cfg = self.config
        a = self.analytics
        rec: dict[str, Any] = dict(extra)
        rec.update(self.labels)
        rec.update(
            layers=cfg.layers,
            relu=cfg.relu,
            noise=cfg.noise,
            noise_dims=cfg.dim if cfg.noise_dims is None else cfg.noise_dims,
            noise_scales=cfg.noise_scales().tolist(),
            dim=cfg.dim,
            batch_size=cfg.batch_size,
            steps=cfg.steps,
            lr=cfg.lr,
            loss=cfg.loss,
            temperature=cfg.temperature,
            init=cfg.init,
            seed=cfg.seed,
            rel_tol=rel_tol,
            collapsed_dims=self.collapsed_dims(rel_tol),
            collapsed_dims_init=int(collapsed_dims(self.embedding_singular_values[0], rel_tol)),
            embedding_singular_values=self.embedding_singular_values[-1].tolist(),
            weight_singular_values=self.weight_singular_values[-1].tolist(),
            final_loss=float(self.loss[-1]),
            x_min_eigenvalue=a.x_min_eigenvalue,
            x_min_eigenvalue_init=a.x_min_eigenvalue_init,
            x_eigenvalues=a.x_eigenvalues,
            lemma2_max_abs_err=a.lemma2_max_abs_err,
            x_abs_max=a.x_abs_max,
            gradient_rel_err=a.gradient_rel_err,
            gradient_layers_checked=a.gradient_layers_checked,
        )
        if a.alignment_diag_mean is not None:
            rec["alignment_diag_mean"] = a.alignment_diag_mean
            rec["alignment_diag_mean_init"] = a.alignment_diag_mean_init
            rec["alignment_weighted_diag_mean"] = a.alignment_weighted_diag_mean
        if a.eq11_rel_err is not None:
            rec["eq11_rel_err"] = a.eq11_rel_err
        return rec


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


def _train_group(configs: list[ToyConfig]) -> list[ToyResult]:
    t_start = time.perf_counter()
    base = configs[0]
    dtype = TORCH_DTYPES[base.dtype]
    d, n, r = base.dim, base.batch_size, len(configs)
    l_max = max(c.layers for c in configs)

    # Weights (R, L_max, d, d), padded with frozen identity layers on the input side.
    w = torch.eye(d, dtype=torch.float64).repeat(r, l_max, 1, 1)
    inits = []
    for i, c in enumerate(configs):
        w0 = init_weights(c, make_generator(c.seed, STREAM_INIT))
        inits.append(w0.numpy().copy())
        w[i, l_max - c.layers :] = w0
    w = w.to(dtype)
    active = torch.zeros(r, l_max, dtype=torch.bool)
    relu_after = torch.zeros(r, l_max, dtype=torch.bool)
    for i, c in enumerate(configs):
        active[i, l_max - c.layers :] = True
        if c.relu:
            relu_after[i, l_max - c.layers : l_max - 1] = True
    relu_layers = [k for k in range(l_max) if bool(relu_after[:, k].any())]
    lr = torch.tensor([c.lr for c in configs], dtype=dtype).view(r, 1, 1, 1) * active.to(
        dtype
    ).view(r, l_max, 1, 1)
    tau = torch.tensor([c.temperature for c in configs], dtype=dtype).view(r, 1, 1)
    noise = torch.tensor(np.stack([c.noise_scales() for c in configs]), dtype=dtype).view(r, 1, d)
    factor_np = base.input_factor()
    factor = None if factor_np is None else torch.as_tensor(factor_np, dtype=dtype)
    factor64 = None if factor_np is None else torch.as_tensor(factor_np, dtype=torch.float64)

    data_gen = make_generator(base.seed, STREAM_DATA)
    eval_gen = make_generator(base.seed, STREAM_EVAL)

    record_steps = sorted(set(range(0, base.steps + 1, base.track_every)) | {base.steps})
    t_count = len(record_steps)
    wsv = np.zeros((r, t_count, l_max, d))
    esv = np.zeros((r, t_count, d))
    align = np.zeros((r, t_count, max(l_max - 1, 0), d, d), dtype=np.float32)
    loss_hist = np.zeros((r, t_count))
    step_losses = torch.zeros(base.steps + 1, r, dtype=dtype)

    def record(k: int, step: int) -> None:
        if not bool(torch.isfinite(w).all()):
            bad = [i for i in range(r) if not bool(torch.isfinite(w[i]).all())]
            raise UsageError(
                f"toy training diverged by step {step} (non-finite weights, lr "
                f"{configs[bad[0]].lr}); lower --lr"
            )
        w64 = w.to(torch.float64)
        u, s, vh = torch.linalg.svd(w64)
        wsv[:, k] = s.numpy()
        if l_max > 1:
            align[:, k] = (vh[:, 1:] @ u[:, :-1]).numpy()
        # The embeddings for the spectrum are computed in float64 whatever the training dtype:
        # collapsed directions sit 1e-8 and more below the leading ones.
        xe = sample_inputs(base.eval_samples, d, eval_gen, factor64, torch.float64)
        z = _forward(w64, xe.expand(r, -1, -1), relu_after, relu_layers)[0]
        for i in range(r):
            esv[i, k] = covariance_spectrum(z[i])
        if step == 0:
            loss_hist[:, k] = np.nan
        else:
            prev = record_steps[k - 1]
            loss_hist[:, k] = step_losses[prev + 1 : step + 1].to(torch.float64).mean(0).numpy() / n

    k = 0
    record(k, 0)
    k += 1
    layers = list(w.unbind(1))  # views into w: in-place updates below update w
    lr_layers = list(lr.unbind(1))
    trainable = [bool(active[:, layer].any()) for layer in range(l_max)]
    relu_keep = {
        layer: ~relu_after[:, layer].view(r, 1, 1) for layer in relu_layers
    }  # True where the run has no ReLU after this layer
    noise_any = bool((noise != 0).any())
    with torch.no_grad():
        for step in range(1, base.steps + 1):
            x = sample_inputs(n, d, data_gen, factor, dtype)
            eps = torch.randn(2 * n, d, generator=data_gen, dtype=dtype)
            # (R, 2N, d): x + n1 then x + n2 (the noise draw happens even when it is zero)
            views = x.repeat(2, 1) + eps * noise if noise_any else x.repeat(2, 1).expand(r, -1, -1)
            hs = []
            h = views
            for layer in range(l_max):
                hs.append(h)
                h = h @ layers[layer].mT
                if layer in relu_keep:
                    h = torch.where(relu_keep[layer], h, h.clamp_min(0))
            loss_sum, g1, g2 = embedding_gradients(h[:, :n], h[:, n:], base.loss, tau)
            delta = torch.cat([g1, g2], dim=1).div_(n)  # gradient of the mean loss on z
            for layer in range(l_max - 1, -1, -1):
                grad = delta.mT @ hs[layer] if trainable[layer] else None
                if layer > 0:
                    delta = delta @ layers[layer]  # before this layer is updated
                    if layer - 1 in relu_keep:
                        delta = delta * ((hs[layer] > 0) | relu_keep[layer - 1])
                if grad is not None:
                    layers[layer].sub_(grad.mul_(lr_layers[layer]))
            step_losses[step] = loss_sum
            if k < t_count and step == record_steps[k]:
                record(k, step)
                k += 1
    # at step 0: the loss of the first batch, evaluated before its update
    loss_hist[:, 0] = step_losses[1].to(torch.float64).numpy() / n

    train_s = time.perf_counter() - t_start
    results = []
    for i, c in enumerate(configs):
        t0 = time.perf_counter()
        lo = l_max - c.layers
        w_final = w[i, lo:].to(torch.float64).numpy().copy()
        analytics = analyze(c, inits[i], w_final)
        results.append(
            ToyResult(
                config=c,
                steps=np.asarray(record_steps),
                loss=loss_hist[i].copy(),
                weight_singular_values=wsv[i, :, lo:].copy(),
                embedding_singular_values=esv[i].copy(),
                alignment=align[i, :, lo:].copy() if c.layers > 1 else None,
                weights_init=inits[i],
                weights=w_final,
                analytics=analytics,
                elapsed_s=train_s / r + (time.perf_counter() - t0),
            )
        )
    return results


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
