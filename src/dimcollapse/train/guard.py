"""The divergence guard: non-finite losses and gradients found on the device, reported once."""

from __future__ import annotations

import torch
from torch import nn

from dimcollapse import distributed as dist
from dimcollapse.errors import UsageError

#: A loss above this multiple of its first value in the run (this invocation) is a divergence,
#: though finite: the online probe's cross-entropy starts near ln(classes) and the contrastive
#: loss is bounded (normalised vectors), so a healthy run never comes near it.
BLOWUP_FACTOR = 1000.0


def divergence_advice(precision: str) -> str:
    """What to try after a non-finite loss, for the precision the run actually used."""
    if precision == "fp32":
        return "lower the learning rate (--base-lr) or lengthen the warm-up (--warmup-epochs)"
    return f"lower the learning rate, or train in fp32 (this run is {precision})"


class DivergenceGuard:
    """Finds non-finite losses and gradients without a host sync per step.

    Each step's contrastive loss, online-probe loss and (outside fp16, where the GradScaler
    owns overflow) gradient norms are checked on the device; the first bad step, its cause and
    the parameter whose gradient went bad are remembered there. :meth:`check` (at log lines,
    before every checkpoint and at each epoch's end) turns a bad step into a ``UsageError``
    naming the step and cause, so no checkpoint or metrics line ever holds a diverged model.
    With ``max_bad_steps`` N > 0 every step is read at once (one sync per step), a bad step's
    update is skipped (fp16: the scaler skips it and lowers its scale) and the run stops at
    the (N+1)-th.

    A finite divergence is caught the same way: a step whose contrastive or online-probe loss
    exceeds :data:`BLOWUP_FACTOR` times its first value is remembered on the device, and
    :meth:`check` stops the run with one line (such a step is not skipped by
    ``--max-bad-steps``: the model itself has run away, not one batch).
    """

    _CAUSES = ("", "the contrastive loss", "the online probe's loss", "a gradient")

    def __init__(
        self, model: nn.Module, precision: str, max_bad_steps: int, device: torch.device
    ) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.check_grads = precision != "fp16"
        self.precision = precision
        self.max_bad_steps = int(max_bad_steps)
        self.bad_steps = 0
        #: What the run directory keeps, for the message; the trainer updates it at each save.
        self.kept = "no checkpoint was saved yet, so nothing of the run is kept"
        self.first_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_cause = torch.zeros((), dtype=torch.int64, device=device)
        self.first_param = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_value = torch.zeros((), device=device)
        self.first_losses = torch.full((2,), float("nan"), device=device)
        self.blown_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.blown_which = torch.zeros((), dtype=torch.int64, device=device)
        self.blown_value = torch.zeros((), device=device)
        self._have: tuple[int, ...] = ()
        self._have_index = torch.zeros(0, dtype=torch.int64)

    def inspect(self, loss: torch.Tensor, probe_loss: torch.Tensor, step: int) -> torch.Tensor:
        """A device bool: whether this step is bad; the first bad step is remembered."""
        loss_bad, probe_bad = ~torch.isfinite(loss), ~torch.isfinite(probe_loss)
        bad = loss_bad | probe_bad
        cause = torch.where(loss_bad, 1, torch.where(probe_bad, 2, 3))
        param = torch.full_like(self.first_param, -1)
        if self.check_grads:
            grad_bad, where_bad = self._bad_gradient()
            if grad_bad is not None:
                param = torch.where(grad_bad, where_bad, param)
                bad = bad | grad_bad
        self._watch_growth(torch.stack([loss.float(), probe_loss.float()]), step)
        new = bad & (self.first_step < 0)
        self.first_step = torch.where(new, step, self.first_step)
        self.first_cause = torch.where(new, cause, self.first_cause)
        self.first_param = torch.where(new, param, self.first_param)
        self.first_value = torch.where(new, loss.float() + probe_loss.float(), self.first_value)
        return bad

    def _watch_growth(self, losses: torch.Tensor, step: int) -> None:
        """Remember (on the device) the first step where a finite loss grew past
        :data:`BLOWUP_FACTOR` times its first value; the first values are the first finite ones."""
        finite = torch.isfinite(losses)
        unset = torch.isnan(self.first_losses) & finite
        self.first_losses = torch.where(unset, losses, self.first_losses)
        grown = finite & (losses > BLOWUP_FACTOR * self.first_losses.abs())
        new = grown.any() & (self.blown_step < 0)
        which = grown.int().argmax()
        self.blown_step = torch.where(new, step, self.blown_step)
        self.blown_which = torch.where(new, which, self.blown_which)
        self.blown_value = torch.where(new, losses[which], self.blown_value)

    def _bad_gradient(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(any gradient non-finite, index of the first such parameter), on the device."""
        have = tuple(i for i, p in enumerate(self.params) if p.grad is not None)
        if not have:
            return None, self._have_index
        norms = torch.stack(torch._foreach_norm([self.params[i].grad for i in have]))
        grad_bad = ~torch.isfinite(norms)
        if self._have != have:  # the same every step: one copy to the device
            self._have, self._have_index = have, torch.tensor(have, device=norms.device)
        return grad_bad.any(), self._have_index[grad_bad.int().argmax()]

    def skip_step(self, bad: torch.Tensor) -> bool:
        """With ``max_bad_steps``: whether to skip this step's update (a host sync per step;
        under torchrun every rank agrees). Without it the update is applied and :meth:`check`
        stops the run before anything is saved. fp16 never skips here: the GradScaler does."""
        if self.max_bad_steps == 0:
            return False
        flag = bad.to(torch.int64).reshape(1)
        if not bool(dist.all_reduce_sum(flag)):
            return False
        self.bad_steps += 1
        if self.bad_steps > self.max_bad_steps:
            self.check(force=True)
        self.first_step.fill_(-1)  # the next bad step is reported afresh
        return self.precision != "fp16"

    def check(self, *, force: bool = False) -> None:
        """Raise a ``UsageError`` naming the first bad step and its cause, if there was one
        (on any process)."""
        flag = ((self.first_step >= 0) | (self.blown_step >= 0)).to(torch.int64).reshape(1)
        if not bool(dist.all_reduce_sum(flag)) and not force:
            return
        raise UsageError(self.describe())

    def describe(self) -> str:
        """One line: what went non-finite at which step, what is kept, what to try."""
        step = int(self.first_step)
        blown = int(self.blown_step)
        if blown >= 0 and (step < 0 or blown < step):
            return self._describe_growth(blown)
        if step < 0:
            return "a step on another process was not finite; " + divergence_advice(self.precision)
        cause = self._CAUSES[int(self.first_cause)]
        if int(self.first_cause) == 3:
            what = f"the gradient of {self.names[int(self.first_param)]} became non-finite"
        else:
            what = f"{cause} became {float(self.first_value)}"
        limit = f" (after {self.max_bad_steps} skipped)" if self.max_bad_steps else ""
        return f"{what} at step {step}{limit}; {self.kept}; {divergence_advice(self.precision)}"

    def _describe_growth(self, step: int) -> str:
        """One line for a finite divergence: which loss, how large against its start."""
        which = int(self.blown_which)
        cause = self._CAUSES[1 + which]
        first = float(self.first_losses[which])
        return (
            f"the run diverged: {cause} grew to {float(self.blown_value):.3g} at step {step}, "
            f"over {BLOWUP_FACTOR:g}x its first value {first:.3g} (finite, but no longer "
            f"learning); {self.kept}; {divergence_advice(self.precision)}"
        )

    def describe_held_out(self, epoch: int, step: int) -> str:
        """One line for a model whose held-out representation is no longer finite while its
        training losses stayed finite (e.g. LARS at an absurd learning rate)."""
        return (
            f"the run diverged: the representation of the held-out images is not finite after "
            f"epoch {epoch} (step {step}), though the training losses stayed finite; "
            f"{self.kept}; {divergence_advice(self.precision)}"
        )
