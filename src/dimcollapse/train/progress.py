"""What a training run prints: a progress bar or periodic lines, and one line per epoch."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class Progress:
    """A tqdm bar on a terminal, plain periodic lines otherwise (rank 0 only)."""

    def __init__(self, enabled: bool, steps: int, epoch: int, epochs: int) -> None:
        self.enabled, self.steps, self.epoch, self.epochs = enabled, steps, epoch, epochs
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(
                total=steps, desc=f"epoch {epoch}/{epochs}", leave=False, dynamic_ncols=True
            )

    def update(self, step_in_epoch: int, loss: float | None, lr: float, ips: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.3g}", img_s=f"{ips:.0f}")
        elif loss is not None:
            print(
                f"epoch {self.epoch}/{self.epochs} step {step_in_epoch}/{self.steps} "
                f"loss {loss:.4f} lr {lr:.4g} {ips:.0f} img/s",
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def epoch_text(m: dict[str, Any], epochs: int) -> str:
    """The line printed after each epoch, from its metrics line ``m``."""
    text = (
        f"epoch {m['epoch']}/{epochs}  loss {m['loss']:.4f}  lr {m['lr']:.4g}  "
        f"{m['images_per_s']:.0f} img/s"
    )
    if "representation_rankme" in m:
        text += (
            f"  | r: RankMe {m['representation_rankme']:.1f}, collapsed "
            f"{m['representation_collapsed_dims']}/{m['representation_dim']}"
            f"{_dead(m, 'representation')}"
            f"  z: RankMe {m['embedding_rankme']:.1f}, collapsed "
            f"{m['embedding_collapsed_dims']}/{m['embedding_dim']}"
            f"{_dead(m, 'embedding')}"
            f"  | online probe top-1 {100 * m['online_probe_top1']:.1f}%"
        )
    return text


def _dead(m: dict[str, Any], space: str) -> str:
    """`` (2 dead)`` when the metrics line counts dead coordinates of ``space``."""
    dead = m.get(f"{space}_dead_dims")
    return f" ({dead} dead)" if dead else ""
