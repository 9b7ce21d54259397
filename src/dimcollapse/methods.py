"""Every training method as a recipe, in one table: its head, its loss, its options.

A :class:`Recipe` is a torch-free record: the head it puts between the representation ``r``
and the loss (a key of :data:`dimcollapse.projectors.HEADS`), the loss it trains with (a key
of :data:`dimcollapse.losses.LOSSES`, whose factory turns the resolved options into
``loss_fn(z1, z2)``), the loss's options with their defaults and checks (:class:`Option`),
and what the report and the reproduction need: a label, a colour, the Table-1 columns, the
reproduction group and the paper's number when there is one. :func:`dimcollapse.losses.build_recipe`
turns a config into the loss of its method; ``train`` and ``bench`` both use it.

Adding a method is a loss (a factory in ``LOSSES``) and a record here, nothing else; a record
may reuse any head and any loss. The methods are the paper's Table 1 (SimCLR with a 2-layer
MLP, a linear or no projector, and DirectCLR), the projector ablations of section 6.3 (a fixed
low-rank and a trainable diagonal projector), and two non-contrastive methods that the paper
does not measure: VICReg (Bardes et al., ICLR 2022) and Barlow Twins (Zbontar et al., ICML
2021). :data:`RECIPES` is the one table; :data:`METHOD_INFO` is the same table under its old
name, and :data:`METHODS` lists its names in order.

Groups: ``reproduce`` plans the groups of :data:`PLANNED_GROUPS` (Table 1 and the ablations,
which must carry the paper's top-1); a method in another group of :data:`GROUPS` is trained
only when asked (``dimcollapse train --method NAME``), never planned silently, and an unknown
group is refused when the table is built.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The reproduction's groups, in order: Table 1 and the projector ablations of section 6.3.
PLANNED_GROUPS: tuple[str, ...] = ("table1", "ablation")
#: Every group a recipe may name: the planned ones, and ``"extra"`` (trained when asked).
GROUPS: tuple[str, ...] = (*PLANNED_GROUPS, "extra")
#: The groups beyond the paper (``reproduce --extras``): every group that is not planned.
EXTRA_GROUPS: tuple[str, ...] = tuple(g for g in GROUPS if g not in PLANNED_GROUPS)
#: The group a reproduction records for the runs of DirectCLR's d0 sweep (no recipe's group).
D0_SWEEP_GROUP = "d0-sweep"


def positive_number(value: Any) -> str | None:
    """None for a finite number > 0, else what is wrong (``"must be positive"``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    return None if value > 0 else "must be positive"


def non_negative_number(value: Any) -> str | None:
    """None for a finite number >= 0, else what is wrong."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    return None if value >= 0 else "must be >= 0"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    """A check that accepts one of ``choices``."""

    def check(value: Any) -> str | None:
        return None if value in choices else f"choose from {', '.join(choices)}"

    check.choices = choices  # type: ignore[attr-defined]
    return check


@dataclass(frozen=True)
class Option:
    """One option of a method's loss.

    name: the keyword its loss factory receives; default: its value when not given; check:
    ``check(value) -> None`` when valid, else what is wrong; help: one line; field: the
    :class:`~dimcollapse.config.TrainConfig` field that carries it (InfoNCE's ``temperature``
    and ``loss``, the settings' old names, kept so that old YAML files and checkpoints load),
    None for an option given in ``method_options``.
    """

    name: str
    default: Any
    check: Callable[[Any], str | None]
    help: str
    field: str | None = None

    def problem(self, value: Any) -> str | None:
        """The error message for ``value``, or None when it passes the check."""
        wrong = self.check(value)
        if wrong is None:
            return None
        label = (self.field or self.name).replace("_", " ")
        choices = getattr(self.check, "choices", None)
        if choices is not None:
            return f"unknown {label} {value!r}; {wrong}"
        return f"{label} {wrong}, got {value!r}"


@dataclass(frozen=True)
class Recipe:
    """One method: what it is built from, how it is shown, and what the paper measured.

    name: the ``--method`` value; label: a readable name for legends and tables; color: its
    colour in every figure; head: the key of its head in :data:`dimcollapse.projectors.HEADS`;
    loss: the key of its loss factory in :data:`dimcollapse.losses.LOSSES`; options: the loss's
    options (:class:`Option`); projector, loss_label: the projector and loss columns of Table 1;
    group: one of :data:`GROUPS`; paper_top1: the paper's ImageNet linear-probe top-1 (%),
    ResNet-50, 100 epochs (Table 1 and section 6.3), None for a method it does not measure;
    has_d0: whether the head uses the sub-vector size d0; takes_proj_out: whether
    ``--proj-out`` sets the head's output size; about: what the method is, one sentence in
    Markdown for the report's section beyond the paper, where ``{label}`` and ``{<option>}``
    become the label and the options' defaults ("" for the paper's methods, which the paper
    describes).
    """

    name: str
    label: str
    color: str
    head: str
    loss: str
    options: tuple[Option, ...] = ()
    projector: str = ""
    loss_label: str = ""
    group: str = "extra"
    paper_top1: float | None = None
    has_d0: bool = False
    takes_proj_out: bool = False
    about: str = ""

    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def resolve_options(
        self, fields: Mapping[str, Any], given: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The loss's options: ``given`` (a config's ``method_options``), else the config field
        that carries the option (``fields``, for ``Option.field``), else the default; each one
        checked. Raises ValueError naming an option this method does not take, or a bad value.
        """
        unknown = sorted(set(given) - set(self.option_names()))
        if unknown:
            takes = ", ".join(self.option_names()) or "none"
            raise ValueError(
                f"method {self.name} takes no option {', '.join(unknown)}; its options: {takes}"
            )
        resolved = {}
        for option in self.options:
            if option.name in given:
                value = given[option.name]
            elif option.field is not None and option.field in fields:
                value = fields[option.field]
            else:
                value = option.default
            problem = option.problem(value)
            if problem:
                raise ValueError(problem)
            resolved[option.name] = value
        return resolved


#: InfoNCE's options (:func:`dimcollapse.losses.info_nce`), carried by TrainConfig's
#: ``temperature`` and ``loss`` fields.
INFO_NCE_OPTIONS: tuple[Option, ...] = (
    Option("temperature", 0.1, positive_number, "InfoNCE temperature", field="temperature"),
    Option(
        "convention",
        "symmetric",
        one_of("symmetric", "ntxent"),
        "symmetric (the paper code's cross-view InfoNCE) | ntxent (SimCLR, 2N-2 negatives)",
        field="loss",
    ),
)
#: VICReg's coefficients as its paper and code set them (Bardes et al. 2022, section 4.3).
VICREG_OPTIONS: tuple[Option, ...] = (
    Option("sim_coeff", 25.0, non_negative_number, "invariance (mean squared error) weight"),
    Option("std_coeff", 25.0, non_negative_number, "variance (hinge on the std) weight"),
    Option("cov_coeff", 1.0, non_negative_number, "covariance (off-diagonal) weight"),
    Option("std_target", 1.0, positive_number, "the std each dimension is pushed up to"),
    Option("eps", 1e-4, positive_number, "added to the variance under the square root"),
)
#: Barlow Twins' options (Zbontar et al. 2021, section 2; its code uses 0.0051).
BARLOW_TWINS_OPTIONS: tuple[Option, ...] = (
    Option("lambd", 5e-3, non_negative_number, "weight of the off-diagonal (redundancy) term"),
    Option("bn_eps", 1e-5, positive_number, "the batch normalisation's epsilon"),
)


def _table(*recipes: Recipe) -> dict[str, Recipe]:
    """The recipes by name; refuse an unknown group or a planned one without a paper number."""
    for r in recipes:
        if r.group not in GROUPS:
            raise ValueError(f"method {r.name}: unknown group {r.group!r}; one of {GROUPS}")
        if r.group in PLANNED_GROUPS and r.paper_top1 is None:
            raise ValueError(f"method {r.name}: the {r.group} group needs the paper's top-1")
    return {r.name: r for r in recipes}


RECIPES: dict[str, Recipe] = _table(
    Recipe(
        "simclr-mlp",
        "SimCLR, 2-layer MLP projector",
        "#1f77b4",
        head="mlp",
        loss="info_nce",
        options=INFO_NCE_OPTIONS,
        projector="2-layer nonlinear (trainable)",
        loss_label="SimCLR",
        group="table1",
        paper_top1=66.5,
        takes_proj_out=True,
    ),
    Recipe(
        "simclr-linear",
        "SimCLR, linear projector",
        "#ff7f0e",
        head="linear",
        loss="info_nce",
        options=INFO_NCE_OPTIONS,
        projector="1-layer linear (trainable)",
        loss_label="SimCLR",
        group="table1",
        paper_top1=61.1,
        takes_proj_out=True,
    ),
    Recipe(
        "simclr-none",
        "SimCLR, no projector",
        "#d62728",
        head="identity",
        loss="info_nce",
        options=INFO_NCE_OPTIONS,
        projector="none",
        loss_label="SimCLR",
        group="table1",
        paper_top1=51.5,
    ),
    Recipe(
        "directclr",
        "DirectCLR",
        "#2ca02c",
        head="subvector",
        loss="info_nce",
        options=INFO_NCE_OPTIONS,
        projector="none (loss on r[:d0])",
        loss_label="DirectCLR",
        group="table1",
        paper_top1=62.7,
        has_d0=True,
    ),
    Recipe(
        "fixed-lowrank",
        "fixed low-rank projector",
        "#9467bd",
        head="fixed-lowrank",
        loss="info_nce",
        options=INFO_NCE_OPTIONS,
        projector="fixed random, rank d0",
        loss_label="SimCLR",
        group="ablation",
        paper_top1=62.3,
        has_d0=True,
    ),
    Recipe(
        "diagonal",
        "trainable diagonal projector",
        "#8c564b",
        head="diagonal",
        loss="info_nce",
        options=INFO_NCE_OPTIONS,
        projector="trainable diagonal",
        loss_label="SimCLR",
        group="ablation",
        paper_top1=60.2,
    ),
    Recipe(
        "vicreg",
        "VICReg",
        "#e377c2",
        head="expander",
        loss="vicreg",
        options=VICREG_OPTIONS,
        projector="3-layer expander (trainable)",
        loss_label="VICReg",
        takes_proj_out=True,
        about=(
            "**{label}** (Bardes, Ponce, LeCun, ICLR 2022) pulls the two views' embeddings "
            "together (invariance: their mean squared distance), penalises every dimension of z "
            "whose standard deviation across the batch falls below {std_target:g} (variance) and "
            "pushes the off-diagonal covariances of z to zero (covariance), weighted "
            "{sim_coeff:g} / {std_coeff:g} / {cov_coeff:g}"
        ),
    ),
    Recipe(
        "barlow-twins",
        "Barlow Twins",
        "#17becf",
        head="expander",
        loss="barlow_twins",
        options=BARLOW_TWINS_OPTIONS,
        projector="3-layer expander (trainable)",
        loss_label="Barlow Twins",
        takes_proj_out=True,
        about=(
            "**{label}** (Zbontar, Jing, Misra, LeCun, Deny, ICML 2021) drives the "
            "cross-correlation matrix between the two views' batch-normalised embeddings to the "
            "identity: its diagonal to 1 (invariance), its off-diagonal to 0 (redundancy "
            "reduction), the latter weighted lambda = {lambd:g}"
        ),
    ),
)

#: The old name of :data:`RECIPES` (the report, the probe and the reproduction read it).
METHOD_INFO = RECIPES
#: The old name of :class:`Recipe`.
MethodInfo = Recipe

#: Every method, in the table's order.
METHODS: tuple[str, ...] = tuple(RECIPES)


def methods_in_group(group: str) -> tuple[str, ...]:
    """The methods of ``group`` (one of :data:`GROUPS`), in the table's order."""
    if group not in GROUPS:
        raise ValueError(f"unknown method group {group!r}; one of {', '.join(GROUPS)}")
    return tuple(m for m, r in RECIPES.items() if r.group == group)


#: Table 1 of the paper, in its order.
TABLE1_METHODS: tuple[str, ...] = methods_in_group("table1")
#: The projector ablations of section 6.3.
ABLATION_METHODS: tuple[str, ...] = methods_in_group("ablation")
#: What ``reproduce`` trains: the methods of :data:`PLANNED_GROUPS`, in order.
PLANNED_METHODS: tuple[str, ...] = tuple(m for g in PLANNED_GROUPS for m in methods_in_group(g))
#: The paper's ImageNet linear-probe top-1 (%) of every method it measured.
PAPER_TOP1: dict[str, float] = {
    m: r.paper_top1 for m, r in RECIPES.items() if r.paper_top1 is not None
}
#: Section 6.3: a linear probe on DirectCLR's sub-vector r[:d0] only.
PAPER_SUBVECTOR_TOP1 = 47.9


def get_recipe(name: str) -> Recipe:
    """The recipe of method ``name``; ValueError naming the methods for anything else."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(RECIPES)}")
    return recipe


def method_label(name: str) -> str:
    """The readable name of a method, or the name itself for anything else (e.g. a run name)."""
    info = RECIPES.get(name)
    return info.label if info else name


def method_color(name: str, default: str = "grey") -> str:
    """The method's colour in every figure, or ``default``."""
    info = RECIPES.get(name)
    return info.color if info else default


__all__ = [
    "ABLATION_METHODS",
    "D0_SWEEP_GROUP",
    "EXTRA_GROUPS",
    "GROUPS",
    "METHODS",
    "METHOD_INFO",
    "PAPER_SUBVECTOR_TOP1",
    "PAPER_TOP1",
    "PLANNED_GROUPS",
    "PLANNED_METHODS",
    "RECIPES",
    "TABLE1_METHODS",
    "MethodInfo",
    "Option",
    "Recipe",
    "get_recipe",
    "method_color",
    "method_label",
    "methods_in_group",
]
