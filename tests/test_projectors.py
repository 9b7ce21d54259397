"""Projector heads: parameter counts, shapes, the fixed low-rank matrix, errors."""

from __future__ import annotations

import pytest
import torch

from dimcollapse.errors import UsageError
from dimcollapse.methods import METHOD_INFO, METHODS, RECIPES
from dimcollapse.projectors import (
    HEADS,
    Head,
    HeadOptions,
    build_head,
    default_d0,
    default_expander_dims,
    default_mlp_dims,
)

REP = 64


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_defaults_follow_the_paper():
    assert default_d0(2048) == 360
    assert default_d0(512) == 90
    assert default_d0(1) == 1
    assert default_mlp_dims(2048) == (2048, 128)
    assert default_mlp_dims(512) == (512, 32)
    assert default_mlp_dims(128) == (128, 16)  # floor of 16
    assert default_mlp_dims(8) == (8, 8)  # never wider than the representation
    # VICReg / Barlow Twins: 8192-8192-8192 on a 2048-d ResNet-50, four times rep_dim
    assert default_expander_dims(2048) == (8192, 8192)
    assert default_expander_dims(512) == (2048, 2048)
    assert default_expander_dims(64) == (256, 256)


def test_trainable_parameter_counts():
    hidden, out = 48, 12
    counts = {
        # two bias-free linears and two BatchNorms (scale and shift each)
        "simclr-mlp": REP * hidden + 2 * hidden + hidden * out + 2 * out,
        "simclr-linear": REP * out,
        "simclr-none": 0,
        "directclr": 0,
        "fixed-lowrank": 0,
        "diagonal": REP,
        # three bias-free linears and two BatchNorms
        "vicreg": REP * hidden + 2 * hidden + hidden * hidden + 2 * hidden + hidden * out,
        "barlow-twins": REP * hidden + 2 * hidden + hidden * hidden + 2 * hidden + hidden * out,
    }
    assert set(counts) == set(METHODS)
    for method, expected in counts.items():
        head = build_head(method, REP, hidden_dim=hidden, out_dim=out, d0=10)
        assert trainable(head) == expected, method


@pytest.mark.parametrize("method", METHODS)
def test_output_shapes_and_attributes(method):
    head = build_head(method, REP, d0=10, generator=torch.Generator().manual_seed(0))
    assert isinstance(head, Head)
    assert head.method == method
    z = head(torch.randn(5, REP))
    assert z.shape == (5, head.out_features)
    expected_out = {
        "simclr-mlp": default_mlp_dims(REP)[1],
        "simclr-linear": default_mlp_dims(REP)[1],
        "directclr": 10,
        "vicreg": default_expander_dims(REP)[1],
        "barlow-twins": default_expander_dims(REP)[1],
    }.get(method, REP)
    assert head.out_features == expected_out
    assert head.d0 == (10 if method in ("directclr", "fixed-lowrank") else None)


def test_every_recipe_names_a_head_and_every_head_builds():
    assert tuple(RECIPES) == METHODS
    assert {r.head for r in RECIPES.values()} <= set(HEADS)
    for name, factory in HEADS.items():
        head = factory(REP, HeadOptions(d0=10, generator=torch.Generator().manual_seed(0)))
        assert isinstance(head, Head) and head.name == name


def test_expander_layout_is_the_papers_code():
    head = build_head("vicreg", 16)
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
    assert [m.bias for m in head.net if isinstance(m, torch.nn.Linear)] == [None] * 3
    assert head.out_features == 64 and head.method == "vicreg"
    assert build_head("barlow-twins", 16, hidden_dim=8, out_dim=4).out_features == 4


@pytest.mark.parametrize("method", METHODS)
def test_method_table_agrees_with_the_heads(method):
    info = METHOD_INFO[method]
    head = build_head(method, REP, d0=10)
    assert (head.d0 is not None) == info.has_d0
    takes_out = build_head(method, REP, d0=10, out_dim=5).out_features == 5
    assert takes_out == info.takes_proj_out
    # only DirectCLR's loss sees r[:, :d0] itself (its sub-vector probe, section 6.3)
    assert head.loss_on_subvector == (method == "directclr")


def test_subvector_is_the_first_d0_coordinates():
    r = torch.randn(4, REP)
    for method in ("directclr", "fixed-lowrank"):
        head = build_head(method, REP, d0=7)
        assert torch.equal(head.subvector(r), r[:, :7])
    with pytest.raises(ValueError, match="simclr-mlp head has no d0"):
        build_head("simclr-mlp", REP).subvector(r)


def test_mlp_layout_is_the_paper_code():
    head = build_head("simclr-mlp", 2048)
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert head.net[0].bias is None and head.net[3].bias is None
    assert (head.net[0].in_features, head.net[0].out_features, head.net[3].out_features) == (
        2048,
        2048,
        128,
    )
    linear = build_head("simclr-linear", 2048)
    assert linear.linear.weight.shape == (128, 2048) and linear.linear.bias is None


def test_directclr_and_identity_pass_r_through():
    r = torch.randn(4, REP)
    assert torch.equal(build_head("directclr", REP, d0=7)(r), r[:, :7])
    assert torch.equal(build_head("simclr-none", REP)(r), r)
    assert build_head("directclr", 2048).d0 == 360


def test_fixed_lowrank_has_d0_unit_singular_values():
    d0 = 10
    head = build_head("fixed-lowrank", REP, d0=d0, generator=torch.Generator().manual_seed(0))
    singular = torch.linalg.svdvals(head.projection.double())
    assert torch.allclose(singular[:d0], torch.ones(d0, dtype=torch.float64), atol=1e-5)
    assert torch.all(singular[d0:].abs() < 1e-5)
    # not DirectCLR in disguise: the singular vectors are random, not the coordinate axes
    assert not torch.allclose(head.projection[:, :d0], torch.eye(REP)[:, :d0], atol=0.1)
    r = torch.randn(3, REP)
    assert torch.allclose(head(r), r @ head.projection.T)


def test_fixed_lowrank_is_a_reproducible_checkpointed_buffer():
    make = lambda seed: build_head(  # noqa: E731
        "fixed-lowrank", REP, d0=5, generator=torch.Generator().manual_seed(seed)
    )
    a, b, c = make(7), make(7), make(8)
    assert torch.equal(a.projection, b.projection)
    assert not torch.allclose(a.projection, c.projection)
    assert "projection" in a.state_dict() and not list(a.parameters())
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.projection, a.projection)
    r = torch.randn(2, REP, requires_grad=True)
    a(r).sum().backward()  # gradient reaches r, nothing in the head trains
    assert r.grad is not None and a.projection.grad is None


def test_diagonal_inits():
    head = build_head("diagonal", REP)
    r = torch.randn(3, REP)
    assert torch.equal(head(r), r)  # ones: starts as "no projector"
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    rand_a = build_head("diagonal", REP, diagonal_init="random", generator=gen())
    rand_b = build_head("diagonal", REP, diagonal_init="random", generator=gen())
    assert torch.equal(rand_a.weight, rand_b.weight)
    w = rand_a.weight.detach()
    # singular values of a square nn.Linear-style init lie in [0, 2/sqrt(3)] (quarter circle)
    assert w.min() >= 0 and w.max() <= 2 / 3**0.5 + 0.05
    assert w.std() > 0.1
    expected = torch.linalg.svdvals(
        (torch.rand(REP, REP, generator=gen()) * 2 - 1).double() * REP**-0.5
    )
    assert torch.allclose(w.sort(descending=True).values.double(), expected, atol=1e-5)


def test_bad_input_raises_usage_error():
    with pytest.raises(UsageError, match="simclr-mlp, simclr-linear"):
        build_head("byol", REP)
    for method in ("directclr", "fixed-lowrank"):
        for d0 in (0, -1, REP + 1, 2.5):
            with pytest.raises(UsageError, match="d0"):
                build_head(method, REP, d0=d0)
    with pytest.raises(UsageError, match="rep_dim"):
        build_head("simclr-none", 0)
    with pytest.raises(UsageError, match="out_dim"):
        build_head("simclr-linear", REP, out_dim=0)
    with pytest.raises(UsageError, match="diagonal init"):
        build_head("diagonal", REP, diagonal_init="zeros")
    # options a method does not use are ignored, so one config can serve every method
    assert build_head("simclr-mlp", REP, d0=10 * REP).out_features == default_mlp_dims(REP)[1]
