"""The toy model's settings: :class:`ToyConfig`, the one source of defaults for the theory lab.

The defaults are those of the paper's own toy code (``toy_task/case_1.py``): d = 16, batch 128,
SGD lr 1e-3 without momentum or weight decay, 10k steps, Gaussian input ``x ~ N(0, I)``, additive
Gaussian noise of standard deviation 1.5 on the last 8 dimensions of both views, one linear layer.
The scenarios in :mod:`dimcollapse.toy.scenarios` change a few of them (case 2 of the paper's
code: two layers, lr 1e-2, noise 1e-3 on every dimension, initialisation ``U diag(exp(-0.35 k)) V^T``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dimcollapse.errors import UsageError
from dimcollapse.options import seed_problem

#: Loss forms: ``distance`` is Eq. 2 (logits -|z_i - z_j|^2 / (2 tau), no normalisation; tau = 1 is
#: the paper's equation); ``cosine`` L2-normalises the embeddings and uses z_i^T z_j / tau.
LOSSES = ("distance", "cosine")
#: Initialisations (each multiplied by ``init_scale``): ``random`` is PyTorch's nn.Linear default
#: U(-1/sqrt(d), 1/sqrt(d)); ``spectral`` is U diag(exp(-decay k)) V^T with Haar-random U, V
#: (non-degenerate singular values, the paper's case 2); ``orthogonal`` is a Haar-random
#: orthogonal matrix (all singular values equal: an isotropic start).
INITS = ("random", "spectral", "orthogonal")
DTYPES = ("float32", "float64")
MAX_LAYERS = 6


@dataclass(frozen=True)
class ToyConfig:
    """One training run of the linear (or ReLU) toy model of sections 4 and 5.

    Model: ``z = W_L s(W_{L-1} ... s(W_1 x))`` with bias-free ``dim x dim`` matrices and ``s`` the
    identity, or ReLU when ``relu`` is set. Views: ``x' = x + n``, ``x'' = x + n'`` with independent
    Gaussian noise of standard deviation ``noise`` on the last ``noise_dims`` coordinates (all of
    them when ``noise_dims`` is None), or per-coordinate standard deviations ``noise_profile``.
    """

    dim: int = 16
    layers: int = 1
    relu: bool = False
    batch_size: int = 128
    steps: int = 10_000
    lr: float = 1e-3
    noise: float = 1.5
    noise_dims: int | None = 8
    #: Per-coordinate noise standard deviations, length ``dim``; overrides ``noise``/``noise_dims``.
    noise_profile: tuple[float, ...] | None = None
    #: Input covariance Sigma_x: None (identity), ``dim`` variances, or a ``dim x dim`` matrix.
    input_cov: tuple[float, ...] | tuple[tuple[float, ...], ...] | None = None
    loss: str = "distance"
    temperature: float = 1.0
    init: str = "random"
    init_decay: float = 0.35
    init_scale: float = 1.0
    #: Record the weights' and the embedding's spectra every this many steps.
    track_every: int = 50
    #: Fresh clean samples for each embedding spectrum (the paper's code uses 1000).
    eval_samples: int = 1000
    #: Fresh batches over which the reported X of Eq. 6 is averaged.
    analysis_batches: int = 16
    seed: int = 0
    dtype: str = "float32"

    def validate(self) -> ToyConfig:
        """Raise :class:`~dimcollapse.errors.UsageError` for an impossible setting; return self."""
        check_dim(self.dim)
        if not 1 <= self.layers <= MAX_LAYERS:
            raise UsageError(f"--layers must be between 1 and {MAX_LAYERS}, got {self.layers}")
        if self.batch_size < 2:
            raise UsageError(f"--batch-size must be at least 2, got {self.batch_size}")
        if self.steps < 1:
            raise UsageError(f"--steps must be at least 1, got {self.steps}")
        _positive("--lr", self.lr)
        _positive("--temperature", self.temperature)
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise UsageError(f"--noise must be a finite number >= 0, got {self.noise}")
        if self.noise_dims is not None and not 0 <= self.noise_dims <= self.dim:
            raise UsageError(
                f"--noise-dims must be between 0 and --dim ({self.dim}), got {self.noise_dims}"
            )
        if self.noise_profile is not None:
            prof = np.asarray(self.noise_profile, dtype=np.float64)
            if prof.shape != (self.dim,):
                raise UsageError(f"noise_profile needs {self.dim} values, got {prof.size}")
            if not (np.all(np.isfinite(prof)) and np.all(prof >= 0)):
                raise UsageError("noise_profile values must be finite and >= 0")
        if self.input_cov is not None:
            self.input_factor()
        if self.loss not in LOSSES:
            raise UsageError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.init not in INITS:
            raise UsageError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        _positive("--init-scale", self.init_scale)
        if not math.isfinite(self.init_decay):
            raise UsageError(f"--init-decay must be finite, got {self.init_decay}")
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        problem = seed_problem(self.seed)
        if problem:
            raise UsageError(f"--seed {problem}")
        if self.track_every < 1:
            raise UsageError(f"--track-every must be at least 1, got {self.track_every}")
        if self.eval_samples < 2:
            raise UsageError(f"--eval-samples must be at least 2, got {self.eval_samples}")
        if self.analysis_batches < 1:
            raise UsageError(f"analysis_batches must be at least 1, got {self.analysis_batches}")
        self._check_memory()
        return self

    def memory_bytes(self) -> int:
        """A lower bound of the memory the lab needs: its float64 dim x dim matrices (weights,
        their gradients and the analyses of Eq. 6), plus the batches and evaluation samples."""
        square = 8 * self.dim * self.dim * (2 * self.layers + 6)
        rows = 8 * self.dim * (4 * self.batch_size + self.eval_samples)
        return square + rows

    def _check_memory(self) -> None:
        """Refuse, before allocating anything, a size this machine's memory cannot hold."""
        from dimcollapse.runtime import check_fits_in_memory  # torch-free --help: torch 1440 ms

        check_fits_in_memory(
            self.memory_bytes(),
            f"--dim {self.dim} (the toy model's {self.dim} x {self.dim} matrices)",
        )

    def noise_scales(self) -> np.ndarray:
        """(dim,) float64 noise standard deviation of each input coordinate."""
        if self.noise_profile is not None:
            return np.asarray(self.noise_profile, dtype=np.float64).copy()
        k = self.dim if self.noise_dims is None else self.noise_dims
        scales = np.zeros(self.dim, dtype=np.float64)
        if k > 0:
            scales[self.dim - k :] = self.noise
        return scales

    def input_factor(self) -> np.ndarray | None:
        """(dim, dim) F with F F^T = Sigma_x (so x = F e, e ~ N(0, I)); None for the identity."""
        if self.input_cov is None:
            return None
        cov = np.asarray(self.input_cov, dtype=np.float64)
        if cov.ndim == 1:
            if cov.shape != (self.dim,) or not np.all(np.isfinite(cov)) or np.any(cov < 0):
                raise UsageError(f"input variances must be {self.dim} finite numbers >= 0")
            return np.diag(np.sqrt(cov))
        if cov.shape != (self.dim, self.dim) or not np.all(np.isfinite(cov)):
            raise UsageError(f"input covariance must be a finite {self.dim} x {self.dim} matrix")
        if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
            raise UsageError("input covariance must be symmetric")
        vals, vecs = np.linalg.eigh(cov)
        if vals.min() < -1e-10 * max(1.0, float(np.abs(vals).max())):
            raise UsageError("input covariance must be positive semi-definite")
        return vecs * np.sqrt(np.clip(vals, 0.0, None))

    def replace(self, **changes: Any) -> ToyConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        for key in ("noise_profile", "input_cov"):
            if out[key] is not None:
                out[key] = np.asarray(out[key]).tolist()
        return out


def check_dim(dim: int) -> None:
    """The width ``d`` must be at least 2 (checked first: other settings' sizes depend on it)."""
    if dim < 2:
        raise UsageError(f"--dim must be at least 2, got {dim}")


def parse_noise_dims(text: str, dim: int) -> int | None:
    """``noise_dims`` from its option: ``all`` (None: every dimension), ``half`` or a count."""
    word = str(text).strip().lower()
    if word == "all":
        return None
    if word == "half":
        return dim // 2
    try:
        k = int(word)
    except ValueError:
        raise UsageError(f"--noise-dims must be 'all', 'half' or a number, got {text!r}") from None
    if k < 0 or k > dim:
        raise UsageError(f"--noise-dims must be between 0 and --dim ({dim}), got {k}")
    return k


def input_variances(values: list[float], dim: int) -> tuple[float, ...] | None:
    """``input_cov`` from the input variances given: one for every dimension, or ``dim`` of them;
    None when every one is 1 (the identity)."""
    if len(values) == 1:
        values = values * dim
    if len(values) != dim:
        raise UsageError(f"--input-var needs 1 or --dim ({dim}) values, got {len(values)}")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise UsageError("--input-var values must be finite and >= 0")
    if all(v == 1.0 for v in values):
        return None
    return tuple(values)


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a finite number > 0, got {value}")
