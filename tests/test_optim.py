"""LARS against a NumPy float64 reference, parameter groups, lr scaling and the schedule."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from dimcollapse.errors import UsageError
from dimcollapse.optim import LARS, OPTIMIZERS, build_optimizer, scaled_lr, warmup_cosine


def lars_reference(params, grads_per_step, lr, momentum, wd, eta):
    """The update rule of the paper's code, one parameter at a time, in float64."""
    params = [p.copy() for p in params]
    buffers = [np.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for k, (p, grad) in enumerate(zip(params, grads)):
            g = grad.copy()
            if p.ndim > 1:  # 1-D parameters: no decay, no trust ratio
                g = g + wd * p
                p_norm, g_norm = np.linalg.norm(p), np.linalg.norm(g)
                if p_norm > 0 and g_norm > 0:
                    g = g * (eta * p_norm / g_norm)
            buffers[k] = momentum * buffers[k] + g
            params[k] = p - lr * buffers[k]
    return params


def test_lars_matches_numpy_reference():
    rng = np.random.default_rng(0)
    initial = [
        rng.normal(size=(3, 4)),
        rng.normal(size=4),
        np.zeros((2, 2)),
        rng.normal(size=(2, 1, 3)),
    ]
    steps = [[rng.normal(size=p.shape) for p in initial] for _ in range(3)]
    lr, momentum, wd, eta = 0.7, 0.9, 0.01, 0.02
    expected = lars_reference(initial, steps, lr, momentum, wd, eta)

    params = [nn.Parameter(torch.from_numpy(p.copy())) for p in initial]
    optimizer = LARS(params, lr=lr, momentum=momentum, weight_decay=wd, eta=eta)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy())
        optimizer.step()
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=1e-12, atol=1e-14)
    # the 1-D parameter took plain momentum SGD steps: no decay, no trust ratio
    bias_sgd = initial[1] - lr * (
        steps[0][1] * (1 + momentum + momentum**2) + steps[1][1] * (1 + momentum) + steps[2][1]
    )
    np.testing.assert_allclose(params[1].detach().numpy(), bias_sgd, rtol=1e-12)


def test_lars_trust_ratio_sets_the_step_size():
    # one step from zero momentum: ||delta p|| = lr * eta * ||p||, whatever the gradient scale
    p = nn.Parameter(torch.randn(5, 5, dtype=torch.float64))
    before = p.detach().clone()
    optimizer = LARS([p], lr=2.0, weight_decay=0.0, eta=0.001)
    p.grad = 1e6 * torch.randn(5, 5, dtype=torch.float64)
    optimizer.step()
    step = torch.linalg.vector_norm(p.detach() - before)
    assert step.item() == pytest.approx(2.0 * 0.001 * torch.linalg.vector_norm(before).item())


def test_lars_options():
    bias = nn.Parameter(torch.ones(3, dtype=torch.float64))
    untouched = nn.Parameter(torch.ones(2, 2))
    optimizer = LARS(
        [bias, untouched], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.5, exclude_1d=False
    )
    bias.grad = torch.full((3,), 4.0, dtype=torch.float64)
    optimizer.step()  # untouched has no gradient and is skipped
    assert torch.allclose(bias, torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.equal(untouched, torch.ones(2, 2))
    with pytest.raises(UsageError):
        LARS([bias], lr=0.0)


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_build_optimizer_excludes_1d_from_decay(name):
    model = small_model()
    model[2].weight.requires_grad_(False)  # frozen parameters are left out
    optimizer = build_optimizer(name, model, lr=0.1, weight_decay=0.5)
    groups = {g["weight_decay"]: g["params"] for g in optimizer.param_groups}
    assert set(groups) == {0.5, 0.0}
    assert [tuple(p.shape) for p in groups[0.5]] == [(3, 4)]
    assert all(p.ndim == 1 for p in groups[0.0]) and len(groups[0.0]) == 3
    if name == "lars":
        assert optimizer.param_groups[0]["eta"] == 0.001

    # with zero gradients only weight decay moves parameters: 2-D ones shrink, 1-D ones stay
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    after = list(model.parameters())
    assert not torch.equal(after[0], before[0]) and torch.all(after[0].abs() <= before[0].abs())
    for b, a in zip(before[1:], after[1:]):
        assert torch.equal(a, b)


def test_build_optimizer_inputs():
    model = small_model()
    params = list(model.parameters())
    assert len(build_optimizer("sgd", params, lr=0.1, weight_decay=0.1).param_groups) == 2
    groups = [{"params": params[:2], "lr": 0.01}, {"params": params[2:]}]
    optimizer = build_optimizer("adamw", groups, lr=0.1, weight_decay=0.1)
    assert sorted(g["lr"] for g in optimizer.param_groups) == [0.01, 0.01, 0.1, 0.1]
    with pytest.raises(UsageError, match="lars, sgd, adamw"):
        build_optimizer("adam", model, lr=0.1, weight_decay=0.0)
    with pytest.raises(UsageError, match="no trainable"):
        build_optimizer("sgd", [], lr=0.1, weight_decay=0.0)


def test_scaled_lr():
    assert scaled_lr(0.3, 4096) == pytest.approx(4.8)  # the paper's recipe
    assert scaled_lr(0.3, 256, rule="sqrt") == pytest.approx(0.3)
    assert scaled_lr(0.3, 1024, rule="sqrt") == pytest.approx(0.6)
    with pytest.raises(UsageError, match="rule"):
        scaled_lr(0.3, 256, rule="cubic")
    with pytest.raises(UsageError, match="batch size"):
        scaled_lr(0.3, 0)


def lrs_over(total, warmup, final_ratio=0.001, base=2.0, steps=None):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = warmup_cosine(
        optimizer, total_steps=total, warmup_steps=warmup, final_ratio=final_ratio
    )
    values = []
    for _ in range(steps if steps is not None else total + 1):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_warmup_cosine_values():
    lrs = lrs_over(total=100, warmup=10, base=2.0, steps=121)
    assert lrs[0] == pytest.approx(2.0 / 10)  # near zero, but the first step is not wasted
    assert lrs[4] == pytest.approx(2.0 * 5 / 10)
    assert lrs[9] == pytest.approx(2.0) and lrs[10] == pytest.approx(2.0)  # end of warm-up
    assert lrs[55] == pytest.approx(2.0 * (0.001 + 0.999 * 0.5))  # half-way down the cosine
    assert lrs[100] == pytest.approx(2.0 * 0.001)  # end
    assert lrs[120] == pytest.approx(2.0 * 0.001)  # stays there
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    no_warmup = lrs_over(total=10, warmup=0, final_ratio=0.0, base=1.0)
    assert no_warmup[0] == pytest.approx(1.0) and no_warmup[10] == pytest.approx(0.0)
    assert no_warmup[5] == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_warmup_cosine_resumes_from_state_dict():
    def build():
        model = nn.Linear(2, 2)
        optimizer = build_optimizer("lars", model, lr=1.0, weight_decay=1e-6)
        return optimizer, warmup_cosine(optimizer, total_steps=50, warmup_steps=5)

    optimizer, scheduler = build()
    for _ in range(17):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    # the schedule's settings travel with the state (LambdaLR keeps a callable object's __dict__)
    assert saved["scheduler"]["lr_lambdas"][0]["warmup_steps"] == 5

    resumed_opt, resumed = build()
    resumed_opt.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert resumed.last_epoch == 17
    for _ in range(10):
        assert resumed.get_last_lr() == pytest.approx(scheduler.get_last_lr())
        assert resumed_opt.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
        for opt, sched in ((optimizer, scheduler), (resumed_opt, resumed)):
            opt.step()
            sched.step()


def test_warmup_cosine_errors():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(UsageError, match="warmup_steps"):
        warmup_cosine(optimizer, total_steps=10, warmup_steps=11)
    with pytest.raises(UsageError, match="total_steps"):
        warmup_cosine(optimizer, total_steps=0, warmup_steps=0)
    with pytest.raises(UsageError, match="final_ratio"):
        warmup_cosine(optimizer, total_steps=10, warmup_steps=1, final_ratio=2.0)


def test_lars_group_without_adaptation_is_plain_sgd_with_momentum():
    w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64))
    opt = LARS([{"params": [w], "adapt": False}], lr=0.1, momentum=0.9, weight_decay=0.01)
    grads = [np.array([[0.3, -0.1], [0.2, 0.4]]), np.array([[-0.2, 0.1], [0.0, 0.5]])]
    ref, mu = w.detach().numpy().copy(), np.zeros((2, 2))
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
        mu = 0.9 * mu + (g + 0.01 * ref)
        ref = ref - 0.1 * mu
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-12)


def test_the_diagonal_projector_weight_is_a_1d_parameter_unless_asked():
    """Section 6.3's diagonal w is 1-D: like the paper's code with every 1-D parameter, it gets
    neither weight decay nor the LARS trust ratio, so it moves by the plain SGD step (under the
    trust ratio it barely moves: issue 23 measured ||w - 1|| / sqrt(d) = 0.016 after a quick
    run). ``lars=True`` keeps the matrix treatment (eta * ||w|| / ||g||) as an option."""
    from dimcollapse.projectors import DiagonalHead

    grad = torch.linspace(-1.0, 1.0, 8)
    for lars in (False, True):
        head = DiagonalHead(8, lars=lars)
        opt = build_optimizer("lars", [head.weight], lr=1.0, weight_decay=0.1, momentum=0.0)
        decayed = [g for g in opt.param_groups if g["weight_decay"] == 0.1 and g["params"]]
        assert bool(decayed) == lars
        head.weight.grad = grad.clone()
        w0 = head.weight.detach().clone()
        opt.step()
        if lars:
            g = grad + 0.1 * w0  # weight decay, then the trust ratio
            expected = w0 - 0.001 * w0.norm() / g.norm() * g
            assert (head.weight.detach() - w0).abs().max() < 0.01
        else:
            expected = w0 - grad  # plain SGD step, no decay
        assert torch.allclose(head.weight.detach(), expected, atol=1e-7)
