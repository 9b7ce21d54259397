"""A PyTorch Lightning callback that logs dimensional collapse each epoch (``dimcollapse[lightning]``).

::

    from dimcollapse.lightning import CollapseCallback

    trainer = lightning.Trainer(callbacks=[CollapseCallback({"r": "backbone", "z": "projector"})])

Each epoch it logs ``collapse/<name>/{rankme, collapsed_dims, dead_dims, cliff_decades, entropy_rank, dims_90}`` through
``LightningModule.log`` (so to whatever logger the Trainer has: TensorBoard, CSV, W&B, ...), for
each watched submodule (names as in ``model.named_modules()``). Two sources of rows:

* ``loader=None`` (default): the training outputs themselves, via forward hooks, up to
  ``max_rows`` rows per name and epoch (the embeddings the loss saw; free of extra forwards);
* ``loader=DataLoader``: a fixed held-out set, embedded at each epoch's end under
  ``torch.no_grad()`` in eval mode by calling the module on each batch's input (the first element
  of a tuple batch): the paper's way (Figs. 2, 7b, 9 use held-out images).

Under DDP every rank's rows are merged before the metrics (:class:`dimcollapse.monitor.
CollapseMonitor`), so every rank logs the same numbers. ``spectra_path``: also append one JSON
line per epoch, ``{"epoch", "<name>": [singular values]}``, for plots like the paper's
(:func:`dimcollapse.plots.plot_spectra`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dimcollapse.monitor import LOGGED_METRICS, CollapseMonitor, Watch, flat_metrics, iter_batches

try:  # optional: dimcollapse[lightning], under either package name
    from lightning.pytorch.callbacks import Callback  # optional: lightning
except ImportError:  # pragma: no cover - exercised only without the extra
    try:
        from pytorch_lightning.callbacks import Callback  # optional: pytorch_lightning
    except ImportError:
        raise ImportError(
            "dimcollapse.lightning needs PyTorch Lightning: pip install 'dimcollapse[lightning]'"
        ) from None


class CollapseCallback(Callback):
    """Log collapse metrics of watched submodules every ``every_n_epochs`` training epochs."""

    def __init__(
        self,
        modules: Mapping[str, str],
        *,
        loader: Any = None,
        every_n_epochs: int = 1,
        max_rows: int = 25_600,
        metrics: tuple[str, ...] = LOGGED_METRICS,
        spectra_path: str | Path | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        self.modules = dict(modules)
        self.loader = loader
        self.every_n_epochs = every_n_epochs
        self.metrics = metrics
        self.spectra_path = Path(spectra_path) if spectra_path is not None else None
        self.monitor = CollapseMonitor(max_rows=max_rows, normalize=normalize)
        self._watch: Watch | None = None
        self.last: dict[str, dict[str, Any]] = {}

    def _due(self, trainer: Any) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._watch = Watch(pl_module, self.modules, self.monitor)
        self._watch.enabled = False

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._watch is not None:
            self._watch.remove()
            self._watch = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.monitor.reset()
        if self._watch is not None:  # training outputs feed the monitor only without a loader
            self._watch.enabled = self.loader is None and self._due(trainer)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self._watch is not None:
            self._watch.enabled = False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._watch is not None and trainer.training:
            self._watch.enabled = self.loader is None and self._due(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._watch is None or not self._due(trainer):
            return
        if self.loader is not None:
            self._embed_held_out(pl_module)
        self._watch.enabled = False
        if not self.monitor.names:
            return
        computed = self.monitor.compute()
        self.last = computed
        pl_module.log_dict(flat_metrics(computed, self.metrics), sync_dist=False)
        if self.spectra_path is not None and trainer.is_global_zero:
            line = {"epoch": trainer.current_epoch}
            line.update({n: s["singular_values"] for n, s in computed.items()})
            self.spectra_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.spectra_path, "a") as fh:
                fh.write(json.dumps(line) + "\n")

    def _embed_held_out(self, pl_module: Any) -> None:
        assert self._watch is not None
        was_training = pl_module.training
        pl_module.eval()
        self.monitor.reset()
        self._watch.enabled = True
        try:
            with torch.no_grad():
                for x in iter_batches(self.loader):
                    pl_module(x.to(pl_module.device))
        finally:
            self._watch.enabled = False
            pl_module.train(was_training)
