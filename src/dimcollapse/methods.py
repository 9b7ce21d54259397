"""Per-method facts, in one table: what each training method is called, how it is drawn, what
its projector is, and what the paper measured for it.

The methods are the paper's Table 1 (SimCLR with a 2-layer MLP, a linear or no projector, and
DirectCLR) and the projector ablations of section 6.3 (a fixed low-rank and a trainable diagonal
projector). Everything that needs a per-method fact (the reproduction's plan, the report's
tables, prose and figures) reads it from :data:`METHOD_INFO`; nothing else types a method's
label, colour or paper number. :data:`METHODS` is the one list of methods: the heads of
:data:`dimcollapse.projectors.HEADS` are keyed and ordered by it, and ``--method``'s help and
checks read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    """One method's facts.

    name: the ``--method`` value; label: a readable name for legends and tables; color: its colour
    in every figure; projector: the projector column of Table 1; loss: the loss column ("SimCLR"
    or "DirectCLR"); group: ``"table1"`` or ``"ablation"``; has_d0: whether the head uses the
    sub-vector size d0; takes_proj_out: whether ``--proj-out`` sets the head's output size;
    paper_top1: the paper's ImageNet linear-probe top-1 (%), ResNet-50, 100 epochs (Table 1
    and section 6.3).
    """

    name: str
    label: str
    color: str
    projector: str
    loss: str
    group: str
    has_d0: bool
    takes_proj_out: bool
    paper_top1: float


METHOD_INFO: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "simclr-mlp",
            "SimCLR, 2-layer MLP projector",
            "#1f77b4",
            "2-layer nonlinear (trainable)",
            "SimCLR",
            "table1",
            False,
            True,
            66.5,
        ),
        MethodInfo(
            "simclr-linear",
            "SimCLR, linear projector",
            "#ff7f0e",
            "1-layer linear (trainable)",
            "SimCLR",
            "table1",
            False,
            True,
            61.1,
        ),
        MethodInfo(
            "simclr-none",
            "SimCLR, no projector",
            "#d62728",
            "none",
            "SimCLR",
            "table1",
            False,
            False,
            51.5,
        ),
        MethodInfo(
            "directclr",
            "DirectCLR",
            "#2ca02c",
            "none (loss on r[:d0])",
            "DirectCLR",
            "table1",
            True,
            False,
            62.7,
        ),
        MethodInfo(
            "fixed-lowrank",
            "fixed low-rank projector",
            "#9467bd",
            "fixed random, rank d0",
            "SimCLR",
            "ablation",
            True,
            False,
            62.3,
        ),
        MethodInfo(
            "diagonal",
            "trainable diagonal projector",
            "#8c564b",
            "trainable diagonal",
            "SimCLR",
            "ablation",
            False,
            False,
            60.2,
        ),
    )
}

#: Every method, in the paper's order.
METHODS: tuple[str, ...] = tuple(METHOD_INFO)
#: Table 1 of the paper, in its order.
TABLE1_METHODS: tuple[str, ...] = tuple(m for m, i in METHOD_INFO.items() if i.group == "table1")
#: The projector ablations of section 6.3.
ABLATION_METHODS: tuple[str, ...] = tuple(
    m for m, i in METHOD_INFO.items() if i.group == "ablation"
)
#: The paper's ImageNet linear-probe top-1 (%) per method.
PAPER_TOP1: dict[str, float] = {m: i.paper_top1 for m, i in METHOD_INFO.items()}
#: Section 6.3: a linear probe on DirectCLR's sub-vector r[:d0] only.
PAPER_SUBVECTOR_TOP1 = 47.9


def method_label(name: str) -> str:
    """The readable name of a method, or the name itself for anything else (e.g. a run name)."""
    info = METHOD_INFO.get(name)
    return info.label if info else name


def method_color(name: str, default: str = "grey") -> str:
    """The method's colour in every figure, or ``default``."""
    info = METHOD_INFO.get(name)
    return info.color if info else default
