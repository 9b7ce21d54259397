"""Heads between the representation ``r`` (backbone output) and the loss input ``z``.

The paper (section 6, Table 1) compares SimCLR with a 2-layer nonlinear projector, a 1-layer
linear projector and no projector against DirectCLR, which feeds the sub-vector ``r[:, :d0]`` to
the loss; its ablations (section 6.3) add a fixed low-rank projector and a trainable diagonal
one; VICReg and Barlow Twins use a 3-layer expander. Each variant is its own small module with
its own factory in :data:`HEADS`, keyed by the head's name; a method's recipe
(:data:`dimcollapse.methods.RECIPES`) names its head, and :func:`build_head` looks the method's
head up there. None switches on a mode string in ``forward``, and once a head is built, callers
ask it rather than its method's name.

Every head maps ``r: (B, rep_dim)`` to ``z: (B, out_features)`` and carries ``method`` (the
method it was built for), ``out_features``, ``d0`` (the sub-space size for ``directclr`` and
``fixed-lowrank``, else ``None``), ``subvector(r)`` (``r[:, :d0]``) and ``loss_on_subvector``
(whether ``z`` is that sub-vector itself, as in DirectCLR).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.choices import PAPER_PROJ_OUT
from dimcollapse.errors import UsageError
from dimcollapse.methods import METHODS, RECIPES  # noqa: F401 - METHODS re-exported

DIAGONAL_INITS = ("ones", "random")

# The paper's values for a ResNet-50 (rep_dim 2048): d0 = 360, projector 2048-2048-128.
_PAPER_REP_DIM = 2048
_PAPER_D0 = 360
# VICReg's and Barlow Twins' expander on a ResNet-50: 2048-8192-8192-8192.
_PAPER_EXPANDER = 8192


def default_d0(rep_dim: int) -> int:
    """DirectCLR's sub-vector size: the paper's 360 for ``rep_dim`` 2048, else the same fraction.

    ``max(1, round(360 / 2048 * rep_dim))``: 90 for a ResNet-18 (512).
    """
    _check_positive("rep_dim", rep_dim)
    if rep_dim == _PAPER_REP_DIM:
        return _PAPER_D0
    return max(1, round(_PAPER_D0 / _PAPER_REP_DIM * rep_dim))


def default_mlp_dims(rep_dim: int) -> tuple[int, int]:
    """``(hidden, out)`` for the projector heads, scaled from the paper's 2048-2048-128.

    Rule: ``hidden = rep_dim`` and ``out = rep_dim / 16`` (rounded), the paper's 128/2048 ratio,
    floored at 16 so that small backbones keep a usable embedding, and never above ``rep_dim``.
    ResNet-50 (2048): (2048, 128), the paper's code; ResNet-18 (512): (512, 32).
    """
    _check_positive("rep_dim", rep_dim)
    out = min(rep_dim, max(16, round(rep_dim * PAPER_PROJ_OUT / _PAPER_REP_DIM)))
    return rep_dim, out


def default_expander_dims(rep_dim: int) -> tuple[int, int]:
    """``(hidden, out)`` of the VICReg / Barlow Twins expander, scaled from their 8192-8192-8192.

    Both papers put a 3-layer expander of width 8192 on a ResNet-50 (rep_dim 2048), four times
    the representation. The rule keeps that ratio, as :func:`default_mlp_dims` keeps the
    SimCLR projector's: ``hidden = out = 4 * rep_dim``. ResNet-50 (2048): (8192, 8192), the
    papers' code; ResNet-18 (512): (2048, 2048); a 1/8-width ResNet-18 (64): (256, 256).
    """
    _check_positive("rep_dim", rep_dim)
    width = rep_dim * _PAPER_EXPANDER // _PAPER_REP_DIM
    return width, width


@dataclass(frozen=True)
class HeadOptions:
    """Every head's options; each head's factory reads the ones its method uses.

    ``d0`` (default :func:`default_d0`) for ``directclr`` and ``fixed-lowrank``; ``hidden_dim``
    for ``simclr-mlp`` and ``out_dim`` for ``simclr-mlp`` / ``simclr-linear`` (defaults
    :func:`default_mlp_dims`); both for the expander (defaults :func:`default_expander_dims`);
    ``diagonal_init`` (one of :data:`DIAGONAL_INITS`) for
    ``diagonal``; ``generator`` draws the random matrices of ``fixed-lowrank`` and of
    ``diagonal_init="random"``.
    """

    d0: int | None = None
    hidden_dim: int | None = None
    out_dim: int | None = None
    generator: torch.Generator | None = None
    diagonal_init: str = "ones"


class Head(nn.Module):
    """Base class: ``forward(r: (B, rep_dim)) -> z: (B, out_features)``.

    ``name``: the head's key in :data:`HEADS`; ``method``: the method it was built for (set by
    :func:`build_head`; the head's name until then)."""

    name: str = ""
    #: whether ``z`` is the sub-vector ``r[:, :d0]`` itself (DirectCLR), so that a probe of that
    #: slice is section 6.3's sub-vector probe
    loss_on_subvector: bool = False

    def __init__(self, rep_dim: int, out_features: int, d0: int | None = None) -> None:
        super().__init__()
        self.method = self.name
        self.rep_dim = rep_dim
        self.out_features = out_features
        self.d0 = d0

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> Head:
        """This head for representations of ``rep_dim``, from the options its method uses."""
        raise NotImplementedError

    def subvector(self, r: Tensor) -> Tensor:
        """``r[:, :d0]``: the first ``d0`` coordinates of ``r: (B, rep_dim)``, ``(B, d0)``.

        Raises ValueError for a head without ``d0``."""
        if self.d0 is None:
            raise ValueError(f"the {self.method} head has no d0, so no sub-vector")
        return r[:, : self.d0]

    def extra_repr(self) -> str:
        d0 = f", d0={self.d0}" if self.d0 is not None else ""
        return f"rep_dim={self.rep_dim}, out_features={self.out_features}{d0}"


def _linear_bn_relu(in_dim: int, out_dim: int) -> tuple[nn.Module, ...]:
    """``Linear(in, out, bias=False) - BatchNorm1d(out) - ReLU``: the hidden block of SimCLR's
    projector (once) and of VICReg's and Barlow Twins' expander (twice)."""
    return nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)


class MLPHead(Head):
    """SimCLR's 2-layer projector as the paper's code builds it.

    ``Linear(rep, hidden, bias=False) - BN - ReLU - Linear(hidden, out, bias=False) - BN``;
    2048-2048-128 on a ResNet-50.
    """

    name = "mlp"

    def __init__(self, rep_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(rep_dim, out_dim)
        self.hidden_dim = hidden_dim
        self.net = nn.Sequential(
            *_linear_bn_relu(rep_dim, hidden_dim),
            nn.Linear(hidden_dim, out_dim, bias=False),
            nn.BatchNorm1d(out_dim),
        )

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> MLPHead:
        return cls(rep_dim, *_hidden_and_out(options, default_mlp_dims(rep_dim)))

    def forward(self, r: Tensor) -> Tensor:
        return self.net(r)


class LinearHead(Head):
    """A trainable 1-layer linear projector, ``Linear(rep, out, bias=False)`` (2048 -> 128)."""

    name = "linear"

    def __init__(self, rep_dim: int, out_dim: int) -> None:
        super().__init__(rep_dim, out_dim)
        self.linear = nn.Linear(rep_dim, out_dim, bias=False)

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> LinearHead:
        _, default_out = default_mlp_dims(rep_dim)
        return cls(rep_dim, _positive_or_default("out_dim", options.out_dim, default_out))

    def forward(self, r: Tensor) -> Tensor:
        return self.linear(r)


class IdentityHead(Head):
    """No projector: the loss sees the whole representation, ``z = r``."""

    name = "identity"

    def __init__(self, rep_dim: int) -> None:
        super().__init__(rep_dim, rep_dim)

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> IdentityHead:
        return cls(rep_dim)

    def forward(self, r: Tensor) -> Tensor:
        return r


class DirectCLRHead(Head):
    """DirectCLR (section 6.2): ``z = r[:, :d0]``, no parameters."""

    name = "subvector"
    loss_on_subvector = True

    def __init__(self, rep_dim: int, d0: int) -> None:
        super().__init__(rep_dim, d0, d0)

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> DirectCLRHead:
        return cls(rep_dim, _checked_d0(rep_dim, options.d0))

    def forward(self, r: Tensor) -> Tensor:
        return self.subvector(r)


class FixedLowRankHead(Head):
    """Fixed low-rank projector (section 6.3): ``z = r @ P.T`` with ``P = U diag(s) V^T``.

    ``s`` holds ``d0`` ones then zeros; ``U`` and ``V`` are random orthogonal ``rep x rep``
    matrices (Haar-distributed). DirectCLR is the special case ``U = V = I``; the paper reports
    62.3% for this head against DirectCLR's 62.7%. ``P`` is a buffer, so it is saved in the
    ``state_dict`` (a checkpoint restores the same projector) but never trained.
    """

    name = "fixed-lowrank"

    def __init__(self, rep_dim: int, d0: int, generator: torch.Generator | None = None) -> None:
        super().__init__(rep_dim, rep_dim, d0)
        u = _random_orthogonal(rep_dim, generator)
        v = _random_orthogonal(rep_dim, generator)
        # U diag(s) V^T with s = (1 x d0, 0 x rest) keeps the first d0 columns of U and V.
        projection = u[:, :d0] @ v[:, :d0].T
        self.register_buffer("projection", projection.to(torch.get_default_dtype()))

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> FixedLowRankHead:
        return cls(rep_dim, _checked_d0(rep_dim, options.d0), options.generator)

    def forward(self, r: Tensor) -> Tensor:
        return r @ self.projection.T


class DiagonalHead(Head):
    """Trainable diagonal projector (section 6.3): ``z = r * w`` with ``w`` of shape ``(rep,)``.

    ``init="ones"`` (default) starts as the identity, i.e. as SimCLR without projector with every
    direction weighted equally. The paper got 60.2% with a diagonal head against 61.1% for a
    linear one and suspected the initialisation: a random matrix's singular values are not
    uniform. ``init="random"`` tests that: ``w`` is a random permutation of the singular values
    of a ``rep x rep`` matrix drawn as PyTorch initialises ``nn.Linear`` (uniform in
    ``+-1/sqrt(rep)``), so the head starts with the spectrum a trainable linear projector has.

    ``w`` is a 1-D parameter, so by default it is trained like the biases and norms: no weight
    decay and no LARS trust ratio, which is what the paper's code does with every 1-D
    parameter. ``lars=True`` treats it as a matrix instead (decayed and LARS-adapted): the
    trust ratio then limits each step to about ``lr * eta`` (1e-3 x lr) of ``||w||``, and in a
    short run ``w`` stays at its initialisation (measured at the quick scale: ``||w - 1|| /
    sqrt(rep)`` = 0.016 after 62 steps, so the head was the identity, i.e. no projector).
    """

    name = "diagonal"

    def __init__(
        self,
        rep_dim: int,
        init: str = "ones",
        generator: torch.Generator | None = None,
        lars: bool = False,
    ) -> None:
        super().__init__(rep_dim, rep_dim)
        if init == "ones":
            weight = torch.ones(rep_dim)
        else:
            bound = rep_dim**-0.5
            square = (torch.rand(rep_dim, rep_dim, generator=generator) * 2 - 1) * bound
            # Singular values as sqrt(eig(W^T W)): several times faster than an SVD at 2048.
            gram = square.double().T @ square.double()
            values = torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().float()
            weight = values[torch.randperm(rep_dim, generator=generator)]
        self.init = init
        self.weight = nn.Parameter(weight)
        if lars:  # treated as a matrix: weight decay and the LARS trust ratio apply
            self.weight.dimcollapse_matrix_like = True

    def weight_motion(self) -> dict[str, Any]:
        """How far training moved ``w`` from the identity (issue 23: does it train at all?):
        ``{"init", "norm_w_minus_1": ||w - 1||, "relative": ||w - 1|| / ||1||, "min", "max"}``
        (``||1|| = sqrt(rep)``; for ``init="random"`` the distance from ones is not a motion)."""
        w = self.weight.detach().double().cpu()
        shift = float(torch.linalg.vector_norm(w - 1.0))
        return {
            "init": self.init,
            "norm_w_minus_1": shift,
            "relative": shift / math.sqrt(w.numel()),
            "min": float(w.min()),
            "max": float(w.max()),
        }

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> DiagonalHead:
        if options.diagonal_init not in DIAGONAL_INITS:
            raise UsageError(
                f"unknown diagonal init {options.diagonal_init!r}; "
                f"choose one of {', '.join(DIAGONAL_INITS)}"
            )
        return cls(rep_dim, options.diagonal_init, options.generator)

    def forward(self, r: Tensor) -> Tensor:
        return r * self.weight


class ExpanderHead(Head):
    """VICReg's and Barlow Twins' expander: ``(Linear - BN - ReLU) x 2 - Linear``.

    ``Linear(rep, hidden) - BN - ReLU - Linear(hidden, hidden) - BN - ReLU - Linear(hidden,
    out)``, 2048-8192-8192-8192 in both papers' code (VICReg's ``Projector``, Barlow Twins'
    ``projector``), scaled to the representation by :func:`default_expander_dims`. Every linear
    is bias-free, as in Barlow Twins; VICReg's code gives the two hidden linears a bias, which
    the batch normalisation right after removes (it subtracts the batch mean), so the two
    expanders compute the same functions.
    """

    name = "expander"

    def __init__(self, rep_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(rep_dim, out_dim)
        self.hidden_dim = hidden_dim
        self.net = nn.Sequential(
            *_linear_bn_relu(rep_dim, hidden_dim),
            *_linear_bn_relu(hidden_dim, hidden_dim),
            nn.Linear(hidden_dim, out_dim, bias=False),
        )

    @classmethod
    def from_options(cls, rep_dim: int, options: HeadOptions) -> ExpanderHead:
        return cls(rep_dim, *_hidden_and_out(options, default_expander_dims(rep_dim)))

    def forward(self, r: Tensor) -> Tensor:
        return self.net(r)


#: A head's factory: ``(rep_dim, options) -> Head``.
HeadFactory = Callable[[int, HeadOptions], Head]

#: Every head's factory, keyed by the head's name (what a recipe's ``head`` names).
HEADS: dict[str, HeadFactory] = {
    head.name: head.from_options
    for head in (
        MLPHead,
        LinearHead,
        IdentityHead,
        DirectCLRHead,
        FixedLowRankHead,
        DiagonalHead,
        ExpanderHead,
    )
}


def build_head(
    method: str,
    rep_dim: int,
    *,
    d0: int | None = None,
    hidden_dim: int | None = None,
    out_dim: int | None = None,
    generator: torch.Generator | None = None,
    diagonal_init: str = "ones",
) -> Head:
    """Build the head of method ``method`` (a key of :data:`~dimcollapse.methods.RECIPES`) for
    representations ``r: (B, rep_dim)``; it maps them to ``z: (B, out_features)``.

    The method's recipe names the head (a key of :data:`HEADS`). Options that a head does not
    use are ignored, so one config serves every method (see :class:`HeadOptions` for which head
    reads which). ``generator`` must be a CPU generator (heads are built on the CPU and moved
    with ``.to(device)``).
    """
    recipe = RECIPES.get(method)
    if recipe is None:
        raise UsageError(f"unknown projector method {method!r}; choose one of {', '.join(RECIPES)}")
    factory = HEADS.get(recipe.head)
    if factory is None:
        raise UsageError(
            f"method {method}: unknown head {recipe.head!r}; choose one of {', '.join(HEADS)}"
        )
    _check_positive("rep_dim", rep_dim)
    options = HeadOptions(d0, hidden_dim, out_dim, generator, diagonal_init)
    head = factory(rep_dim, options)
    head.method = method
    return head


def _checked_d0(rep_dim: int, d0: int | None) -> int:
    """``d0``, or :func:`default_d0` when None; UsageError outside ``[1, rep_dim]``."""
    d0 = default_d0(rep_dim) if d0 is None else d0
    if isinstance(d0, bool) or not isinstance(d0, numbers.Integral) or not 0 < d0 <= rep_dim:
        raise UsageError(f"d0 must be in [1, rep_dim={rep_dim}], got {d0}")
    return int(d0)


def _hidden_and_out(options: HeadOptions, defaults: tuple[int, int]) -> tuple[int, int]:
    """``(hidden, out)`` of a head with a hidden layer: the options' sizes, else ``defaults``
    (``(hidden, out)``); the output size is checked first, then the hidden one."""
    default_hidden, default_out = defaults
    out_dim = _positive_or_default("out_dim", options.out_dim, default_out)
    return _positive_or_default("hidden_dim", options.hidden_dim, default_hidden), out_dim


def _positive_or_default(name: str, value: int | None, default: int) -> int:
    """``value``, or ``default`` when None; UsageError unless a positive integer."""
    value = default if value is None else value
    _check_positive(name, value)
    return value


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def _random_orthogonal(n: int, generator: torch.Generator | None) -> Tensor:
    """A Haar-random ``(n, n)`` orthogonal matrix in float64: QR of a Gaussian, signs fixed.

    Plain QR is not uniform over the orthogonal group; multiplying column ``k`` of ``Q`` by the
    sign of ``R[k, k]`` makes it so (Mezzadri, 2007).
    """
    gaussian = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs
