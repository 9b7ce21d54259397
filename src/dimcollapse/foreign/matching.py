"""Which tensors of a weights file are the model: by name under a prefix, else by structure;
and which encoder, when a checkpoint holds two.

* **By name**: each file key that ends with a model key proposes the rest as a prefix
  (``backbone.``, ``module.encoder_q.``, ...); a prefix whose keys supply at least
  :data:`MIN_MATCH` of the model's tensors with the right shape is a candidate.
* **By structure** (only when no prefix maps the names): lightly's
  ``nn.Sequential(*list(resnet.children())[:-1])`` renames ``conv1.weight`` to ``0.weight``
  but keeps the order of the state dict. The tensors under one root (``backbone.``) are paired
  with the model's in order; accepted only when the counts are equal and every pair agrees in
  shape and in kind (``weight``, ``bias``, ``running_mean``, ``running_var``: so the counts of
  each kind agree too). BatchNorm's ``num_batches_tracked`` counters are left out on both sides.
* **Twins**: two candidates (query and key encoder, student and teacher, weights and their EMA;
  lightly's examples' ``backbone`` and ``backbone_momentum`` (MoCo), ``student_backbone`` and
  ``teacher_backbone`` (DINO)) are settled by :data:`TWINS`, the encoder each method evaluates,
  or by ``select``; anything still ambiguous is refused, naming ``--prefix`` and ``--select``.
* **solo-learn** (:func:`solo_learn_layout`): its backbone is recognised by the online
  ``classifier`` beside ``backbone.`` (its CIFAR stem's padding depends on it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dimcollapse.errors import UsageError

#: The fewest backbone tensors (fraction) a weights file must supply.
MIN_MATCH = 0.9

#: (the encoder evaluated, its twins, why): a candidate named by a twin word is dropped when
#: another candidate carries the evaluated word.
TWINS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("teacher", ("student",), "DINO evaluates the teacher"),
    ("encoder_q", ("encoder_k",), "MoCo v1/v2 evaluate the query encoder"),
    ("base_encoder", ("momentum_encoder",), "MoCo v3 evaluates the base encoder"),
    ("backbone", ("momentum_backbone",), "solo-learn evaluates the online backbone"),
    ("backbone", ("backbone_momentum",), "lightly's MoCo evaluates the query backbone"),
    ("teacher_backbone", ("student_backbone",), "lightly's DINO evaluates the teacher backbone"),
    ("online_network", ("target_network",), "BYOL evaluates the online network"),
    ("state_dict_ema", ("state_dict",), "timm evaluates the EMA weights"),
    ("model_ema", ("model",), "the EMA weights are the ones evaluated"),
)
#: ``--select`` words beside the names in the file themselves.
SELECT_ALIASES: dict[str, tuple[str, ...]] = {
    "query": ("encoder_q",),
    "key": ("encoder_k", "backbone_momentum"),
    "base": ("base_encoder",),
    "momentum": ("momentum_encoder", "momentum_backbone", "backbone_momentum", "encoder_k"),
    "teacher": ("teacher_backbone",),
    "student": ("student_backbone",),
    "ema": ("state_dict_ema", "model_ema"),
    "online": ("online_network",),
    "target": ("target_network",),
}
_KINDS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class Found:
    """The model's tensors located in a file: ``state`` maps model keys to file tensors."""

    group: str
    prefix: str
    state: dict[str, Tensor]
    missing: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (file key, model key)

    @property
    def by_structure(self) -> bool:
        return bool(self.pairs)

    @property
    def label(self) -> str:
        """Where in the file, e.g. ``teacher.backbone`` or ``state_dict.module.encoder_q``."""
        return ".".join(p for p in (self.group, self.prefix.rstrip(".")) if p) or "top level"

    @property
    def words(self) -> set[str]:
        return {w for w in f"{self.group}.{self.prefix}".split(".") if w}


def model_keys(model: nn.Module) -> list[str]:
    """The state-dict keys a file must supply (BatchNorm's step counters left out)."""
    return [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]


def proposed_prefixes(file_keys: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Every prefix some file key proposes (the rest of it is a model key), most votes first."""
    votes: Counter[str] = Counter()
    model_set = set(keys)
    for fk in file_keys:
        if fk in model_set:
            votes[""] += 1
            continue
        parts = fk.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in model_set:
                votes[".".join(parts[:i]) + "."] += 1
                break
    return [p for p, _ in votes.most_common()]


def find_prefix(file_keys: Sequence[str], model_keys: Sequence[str]) -> str:
    """The key prefix of a weights file relative to a model's keys, by vote (may be '')."""
    proposed = proposed_prefixes(file_keys, model_keys)
    return proposed[0] if proposed else ""


def locate_weights(
    model: nn.Module,
    groups: Mapping[str, Mapping[str, Tensor]],
    *,
    prefix: str | None = None,
    select: str | None = None,
    source: str = "weights file",
) -> tuple[Found, list[str]]:
    """The model's tensors in ``groups`` (from :func:`~dimcollapse.foreign.weights.read_tensor_groups`)
    and the notes to print (structure matching, which twin was chosen).

    Refuses (UsageError, one line) when no group supplies :data:`MIN_MATCH` of the model's
    tensors, or when more than one does and neither :data:`TWINS` nor ``select`` decides.
    """
    state = model.state_dict()
    keys = model_keys(model)
    if not keys:
        raise UsageError(f"{source}: the model has no tensors to load")
    found, best = _by_names(state, keys, groups, prefix)
    if not found:
        found = _by_structure(state, keys, groups, prefix)
    if not found:
        raise _not_found(source, state, keys, groups, best)
    chosen, note = choose_encoder(found, select, source)
    notes = [note] if note else []
    if chosen.by_structure:
        shown = ", ".join(f"{f} -> {m}" for f, m in chosen.pairs[:3])
        notes.append(
            f"names matched by structure: the {len(chosen.pairs)} tensors under "
            f"{chosen.label!r} paired with the model's in order, every shape and kind agreeing "
            f"({shown}, ...)"
        )
    return chosen, notes


def _by_names(
    state: Mapping[str, Tensor],
    keys: Sequence[str],
    groups: Mapping[str, Mapping[str, Tensor]],
    prefix: str | None,
) -> tuple[list[Found], tuple[str, str, int]]:
    """Candidates by name, and the best failed attempt ``(group, prefix, matched)``."""
    found: list[Found] = []
    best = ("", prefix or "", -1)
    for group, tensors in groups.items():
        prefixes = [prefix] if prefix is not None else proposed_prefixes(list(tensors), keys)
        for p in prefixes or [""]:
            matched = {
                k: tensors[p + k]
                for k in keys
                if p + k in tensors and tuple(tensors[p + k].shape) == tuple(state[k].shape)
            }
            if len(matched) >= MIN_MATCH * len(keys):
                missing = [k for k in keys if k not in matched]
                found.append(Found(group, p, matched, missing))
            elif len(matched) > best[2]:
                best = (group, p, len(matched))
    return found, best


def _by_structure(
    state: Mapping[str, Tensor],
    keys: Sequence[str],
    groups: Mapping[str, Mapping[str, Tensor]],
    prefix: str | None,
) -> list[Found]:
    """Candidates by order and shape: the tensors under one root, paired with the model's."""
    found = []
    for group, tensors in groups.items():
        file_keys = [k for k in tensors if not k.endswith("num_batches_tracked")]
        if prefix is not None:
            roots = [prefix]
        else:
            counts: Counter[str] = Counter()
            for k in file_keys:
                parts = k.split(".")
                counts.update({".".join(parts[:i]) + "." if i else "" for i in range(len(parts))})
            roots = [r for r, n in counts.items() if n == len(keys)]
        for root in roots:
            under = [k for k in file_keys if k.startswith(root)]
            if len(under) != len(keys):
                continue
            if all(
                _kind(f) == _kind(m) and tuple(tensors[f].shape) == tuple(state[m].shape)
                for f, m in zip(under, keys)
            ):
                pairs = list(zip(under, keys))
                found.append(Found(group, root, {m: tensors[f] for f, m in pairs}, [], pairs))
    return found


def _kind(key: str) -> str:
    last = key.rpartition(".")[2]
    return last if last in _KINDS else "other"


def choose_encoder(
    found: Sequence[Found], select: str | None, source: str
) -> tuple[Found, str | None]:
    """One of several candidates: by ``select``, else the one its method evaluates
    (:data:`TWINS`); a note when there was a choice. Refuses what stays ambiguous."""
    labels = ", ".join(repr(f.label) for f in found)
    left = list(found)
    reasons = []
    if select is not None:
        wanted = {select, *SELECT_ALIASES.get(select, ())}
        left = [f for f in left if wanted & f.words]
        if not left:
            raise UsageError(
                f"{source}: --select {select!r} names none of the tensor sets that fit the model "
                f"({labels})"
            )
        reasons.append(f"--select {select}")
    for evaluated, twins, why in TWINS:
        if len(left) < 2 or not any(evaluated in f.words for f in left):
            continue
        kept = [f for f in left if evaluated in f.words or not set(twins) & f.words]
        if len(kept) < len(left):
            left, reasons = kept, [*reasons, why]
    if len(left) > 1 and all(_same_tensors(left[0], f) for f in left[1:]):
        reasons.append("the same tensors under each name")
        left = left[:1]
    if len(left) > 1:
        raise UsageError(
            f"{source}: {len(left)} sets of tensors fit the model "
            f"({', '.join(repr(f.label) for f in left)}): choose one with --prefix (the key "
            "prefix) or --select (a word of its name)"
        )
    if len(found) == 1:
        return found[0], None
    others = ", ".join(repr(f.label) for f in found if f is not left[0])
    return left[0], (
        f"{len(found)} encoders fit the model: using {left[0].label!r} ({'; '.join(reasons)}), "
        f"not {others} (--select chooses)"
    )


def solo_learn_layout(found: Found, groups: Mapping[str, Mapping[str, Tensor]]) -> str | None:
    """What shows that ``found`` is a solo-learn backbone, or None.

    solo-learn (vturrisi/solo-learn, solo/methods/base.py and solo/methods/linear.py) keeps the
    backbone under ``backbone.`` with torchvision's names (``momentum_backbone.`` for the
    momentum copy) and always an online linear ``classifier`` on the backbone's features beside
    it; pretraining checkpoints add ``projector.`` or ``momentum_backbone.``. Recognised when
    the tensors were found by name under one of those prefixes and ``classifier.weight`` in the
    same dictionary reads as many features as the backbone's last normalisation layer has.
    """
    if found.by_structure or found.prefix not in ("backbone.", "momentum_backbone."):
        return None
    tensors = groups.get(found.group, {})
    classifier = tensors.get("classifier.weight")
    widths = [t.shape[0] for k, t in found.state.items() if k.endswith(".weight") and t.ndim == 1]
    if classifier is None or classifier.ndim != 2 or not widths:
        return None
    if classifier.shape[1] != widths[-1]:
        return None
    own = found.prefix.rstrip(".")
    beside = [
        f"'{name}.'"
        for name in ("classifier", "projector", "backbone", "momentum_backbone")
        if name != own and any(k.startswith(name + ".") for k in tensors)
    ]
    return f"'{found.prefix}' beside {', '.join(beside)}"


def _same_tensors(a: Found, b: Found) -> bool:
    return a.state.keys() == b.state.keys() and all(
        torch.equal(a.state[k], b.state[k]) for k in a.state
    )


def _not_found(
    source: str,
    state: Mapping[str, Tensor],
    keys: Sequence[str],
    groups: Mapping[str, Mapping[str, Tensor]],
    best: tuple[str, str, int],
) -> UsageError:
    group, prefix, _ = best
    tensors = groups.get(group, {})
    matched = [k for k in keys if prefix + k in tensors]
    wrong = [k for k in matched if tuple(tensors[prefix + k].shape) != tuple(state[k].shape)]
    right = len(matched) - len(wrong)
    what = f"prefix {prefix!r}" if prefix else "no prefix"
    if group:
        what += f" in {group!r}"
    if wrong:
        k = wrong[0]
        detail = (
            f"; {len(wrong)} have another shape (e.g. {k}: "
            f"{tuple(tensors[prefix + k].shape)} in the file, {tuple(state[k].shape)} here)"
        )
    else:
        missing = [k for k in keys if prefix + k not in tensors]
        detail = f"; e.g. {missing[0]!r} is missing" if missing else ""
    return UsageError(
        f"{source}: only {right} of {len(keys)} tensors of the model found ({what}){detail}: "
        "is it another architecture? (--prefix sets the key prefix)"
    )
