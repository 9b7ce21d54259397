"""Throughput benchmarks: how fast can the training step go, and what feeds it.

:func:`run_bench` measures, in one run on one device, pairs of views per second of

* (a) the **backbone ceiling**: the training step alone on two random view tensors already on the
  device (two forwards of backbone + ``simclr-mlp`` head, symmetric InfoNCE with tau 0.1,
  backward, LARS step; bf16 autocast and channels_last on a GPU);
* (b) the **device-augmentation path**: uint8 images held on the device, a random batch of
  indices, :class:`~dimcollapse.data.device_augment.DeviceTwoViewAugment`, then the same step
  (the trainer's own loader, ``build_view_loader(path="device")``);
* (c) the **CPU-worker path**: a ``DataLoader`` of ``workers`` processes applying
  :class:`~dimcollapse.data.augment.TwoViewTransform` per image, pinned memory and non-blocking
  copies (``build_view_loader(path="workers")``), then the same step;

and the seconds :class:`~dimcollapse.spectrum.SpectrumAccumulator` takes to turn
``spectrum_rows x spectrum_dim`` random float32 embeddings held on the device into a spectrum
(accumulation of the covariance in chunks, then the eigendecomposition).

Timing: warm-up steps are excluded; the clock starts after a device synchronisation and stops
after one (``torch.cuda.synchronize``), and nothing inside a timed loop waits on the device. The
images are random uint8 (the content does not change the cost of any path). For the worker path
on a GPU the batches arrive in bursts (each worker assembles a whole batch), so its rate is
taken between two moments at which the loader's queue ran dry (see :func:`_worker_rate`), which
does not depend on how many batches happened to be queued when the clock started.

Defaults depend on the device: on CUDA the issue's setting (ResNet-18 with the small stem,
32x32x3, batch 1024, bf16, 16 workers, spectrum 1,000,000 x 2048); on a CPU a scaled-down one
(width 0.25, batch 64, 2 timed steps, spectrum 100,000 x 512) that finishes in well under a
minute; the result says which settings were scaled down.

Modules: :mod:`.settings` (what is measured, the device's defaults), :mod:`.step` (the timed
training step: a private copy of the model, to be replaced by the trainer's), :mod:`.timing` (the
three paths and the spectrum), :mod:`.run`
(:func:`run_bench`), :mod:`.goals` (the H200 goals) and :mod:`.report` (the readable table).

Names are imported when first used, so that :mod:`.defaults` (read by ``bench --help``) can be
imported without torch.
"""

from __future__ import annotations

from dimcollapse.lazy import lazy_exports

#: Each public name and the module that defines it, imported when the name is first read.
_EXPORTS = {
    "BENCH_HEAD": "dimcollapse.bench.step",
    "BENCH_PRECISIONS": "dimcollapse.bench.settings",
    "CPU_DEFAULTS": "dimcollapse.bench.defaults",
    "GOALS_LARGE": "dimcollapse.bench.goals",
    "GOALS_SMALL": "dimcollapse.bench.goals",
    "GPU_DEFAULTS": "dimcollapse.bench.defaults",
    "GPU_LARGE_IMAGE_BATCH": "dimcollapse.bench.defaults",
    "SPECTRUM_CHUNK_ROWS": "dimcollapse.bench.timing",
    "BenchSettings": "dimcollapse.bench.settings",
    "_worker_rate": "dimcollapse.bench.timing",
    "cpu_model": "dimcollapse.runtime",
    "device_name": "dimcollapse.runtime",
    "evaluate_goals": "dimcollapse.bench.goals",
    "format_report": "dimcollapse.bench.report",
    "resolve_settings": "dimcollapse.bench.settings",
    "run_bench": "dimcollapse.bench.run",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
