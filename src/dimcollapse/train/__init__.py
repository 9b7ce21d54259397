"""Contrastive pretraining (section 6): SimCLR projector variants, DirectCLR and the ablations.

One loop for one process, one GPU or many under ``torchrun`` (PyTorch DDP). Each epoch it
measures collapse the way the paper does: the covariance spectra (Eq. 1) of the representation
r (Figs. 7b, 9) and of the embedding z (Fig. 2) on held-out images, streamed through
:class:`~dimcollapse.spectrum.SpectrumAccumulator`, with RankMe and collapsed-dimension counts,
plus the accuracy of the online linear probe trained on ``r.detach()``. The run directory's
files are described in :mod:`dimcollapse.rundir`; the checkpoint in :mod:`dimcollapse.checkpoint`.

Preemption and faults: a signal lets the step finish, saves, and raises
:class:`~dimcollapse.errors.Terminated` / :class:`~dimcollapse.errors.Interrupted`; a resume at
any step continues with the same batches (``ViewLoader.set_epoch(e, start_step=k)``) and the
epoch's partial sums, so it is bit-identical to an uninterrupted run. :class:`DivergenceGuard`
stops a run at a non-finite loss or gradient before anything is saved.

Modules: ``run`` (:func:`train`: the process group, a failed run's cleanup), ``session``
(build, run the epochs, finish), ``build`` (data, augmentation, model
spec from the config), ``step`` (the optimisation step, shared with ``bench``; its optimiser from
:func:`dimcollapse.optim.build_optimization`), ``guard``
(divergence), ``interrupt`` (signals and the checkpoint clock), ``resume`` (what a resume may
change), ``heldout`` (per-epoch collapse measurements), ``progress`` (what is printed).
"""

from dimcollapse.rundir import RUN_FILES, read_jsonl
from dimcollapse.train.build import model_spec, resolve_augment, use_sync_bn
from dimcollapse.train.guard import DivergenceGuard, divergence_advice
from dimcollapse.train.resume import RESUME_MAY_CHANGE
from dimcollapse.train.run import train
from dimcollapse.train.session import RunResult
from dimcollapse.train.step import EpochTally, Stepper, build_stepper

__all__ = [
    "RESUME_MAY_CHANGE",
    "RUN_FILES",
    "DivergenceGuard",
    "EpochTally",
    "RunResult",
    "Stepper",
    "build_stepper",
    "divergence_advice",
    "model_spec",
    "read_jsonl",
    "resolve_augment",
    "train",
    "use_sync_bn",
]
