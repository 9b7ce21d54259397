"""Reproduce the paper's experiments end to end (``dimcollapse reproduce``).

One call pretrains every method of Table 1 (``simclr-mlp``, ``simclr-linear``, ``simclr-none``,
``directclr``) and the two ablations of section 6.3 (``fixed-lowrank``, ``diagonal``), at ``full``
scale also a sweep of DirectCLR's sub-vector size d0; probes each frozen backbone offline (linear
and kNN, on the full representation and, for DirectCLR, on the sub-vector ``r[:d0]``); measures
the covariance spectra (Eq. 1) of the representation and the embedding on held-out images; probes
two baselines (raw pixels, a randomly initialised backbone); runs the theory lab
(:mod:`dimcollapse.toy`); and writes the report (:mod:`dimcollapse.report`).

Output directory::

    reproduce.json            settings, environment, every result (machine-readable)
    report.md, report.html    the report (the HTML embeds its figures: one self-contained file)
    figures/*.png             the report's figures
    runs/<name>/              one pretraining run each (``dimcollapse train`` layout) plus
                              reproduce_stage.json, the stage's probe and spectrum results
    baselines/                raw-pixel and random-backbone probes
    toys/                     the theory lab's figures and summaries

Resuming: a stage whose ``reproduce_stage.json`` holds the same settings is reused; a run
interrupted during pretraining resumes from its ``checkpoints/last.pt``; so an interrupted
reproduce continues when rerun with the same command. A directory holding a report of other
settings (or anything else) is refused.

Seeds: every method is trained with ``--seeds K`` seeds (``seed``, ``seed + 1``, ...; each
seed trains every method on the same images in the same order). ``reproduce.json`` keeps each
seed's results in ``runs[name]["seeds"]`` and reports their mean in the usual fields with a 95%
Student-t interval beside the main ones (``top1_ci95``, ``knn_top1_k20_ci95``, ``rankme_ci95``;
:mod:`dimcollapse.aggregate`); claims are judged from the paired differences across seeds
(:mod:`dimcollapse.report.claims`).

Scales (``--epochs``, ``--subset``, ``--width``, ``--seeds`` override them). The defaults come
from the study in ``docs/experiments/fashion-mnist-collapse.md``:

* ``quick`` (the demo, at most 10 minutes on 2 cores): Fashion-MNIST, 3 seeds, 4,000 training
  images, 6 epochs at batch 128, ResNet-18 at width 0.25 with its standard stem (stride-2 conv
  and max-pool: a 7x7 map after the stem, ten times cheaper than the small-image stem), the
  paper's absolute 128-d embedding (a rep/16 = 16-d one uses every dimension and cannot show
  Fig. 2's collapse; 128 shows 5-12 collapsed dimensions in every seed), 30-epoch probes on
  the whole test set, no d0 sweep. Batch 128 doubles the steps of so short a run (collapse is
  a product of optimisation steps; it was tighter across seeds than at 256). Two seeds
  already give an interval, but a wide one (t = 12.7 at one degree of freedom, 4.3 at two);
  a difference equal in every seed decides only from 6 seeds (:mod:`dimcollapse.stats`).
* ``cpu`` (67 minutes measured on 2 busy cores; at most 90): the same network, 3 seeds, 8,000 images, 30 epochs
  at the paper's batch-size rule (256), 100-epoch probes on the whole test set, the theory lab
  at its full lengths: every Table 1 claim gets an interval, which decides only where the
  methods differ by more than the seeds do (in docs/results/fashion-mnist-cpu, 3 of the 4
  stay inconclusive).
* ``full``: one GPU (or several under ``torchrun``; rank 0 probes and writes the report). All of
  Fashion-MNIST (or ``--dataset cifar10 --data-root DIR``), 3 seeds, ResNet-18 at width 1 with
  the small-image stem, 100 epochs, 100-epoch probes on the whole test set, and the d0 sweep.

On a CPU the runs go to parallel single-threaded worker processes: on a 2-core machine two
processes of one thread each trained 4.3 times as many images per second as one process with
two threads (``benchmarks/bench_cpu_step.py --processes``).

Modules: ``plan`` (scales, settings, the runs), ``stages`` (a stage's task, the stage cache,
how far training got), ``run_stage``, ``baselines``, ``toys`` (the three kinds of stage),
``execute`` (the tasks, the worker pool, :func:`reproduce`); versions and hardware come from
:func:`dimcollapse.runtime.environment`.
"""

from __future__ import annotations

from dimcollapse.methods import (
    ABLATION_METHODS,
    METHODS,
    PAPER_SUBVECTOR_TOP1,
    PAPER_TOP1,
    TABLE1_METHODS,
)
from dimcollapse.reproduce.execute import reproduce
from dimcollapse.reproduce.manifest import FORMAT, FORMAT_VERSION, Manifest, ReproduceLayout
from dimcollapse.reproduce.plan import (
    D0_DIVISORS,
    SCALE_DEFAULTS,
    SCALES,
    Plan,
    ReproduceSettings,
    RunPlan,
    plan_runs,
    resolve_plan,
    run_names,
    train_config,
)
from dimcollapse.reproduce.stages import STAGE_FILE, STAGE_FORMAT
from dimcollapse.reproduce.toys import TOY_SCENARIOS, run_toys

__all__ = [
    "ABLATION_METHODS",
    "D0_DIVISORS",
    "FORMAT",
    "FORMAT_VERSION",
    "METHODS",
    "Manifest",
    "PAPER_SUBVECTOR_TOP1",
    "PAPER_TOP1",
    "SCALES",
    "SCALE_DEFAULTS",
    "STAGE_FILE",
    "STAGE_FORMAT",
    "TABLE1_METHODS",
    "TOY_SCENARIOS",
    "Plan",
    "ReproduceLayout",
    "ReproduceSettings",
    "RunPlan",
    "plan_runs",
    "reproduce",
    "resolve_plan",
    "run_names",
    "run_toys",
    "train_config",
]
