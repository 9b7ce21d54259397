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

Scales (``--epochs``, ``--subset``, ``--width``, ``--seeds`` override them; the table is
:data:`dimcollapse.manifest.settings.SCALE_DEFAULTS`). The CPU settings come from the 3-seed
pilot in ``docs/experiments/fashion-mnist-collapse.md``, chosen on a validation split:

* ``quick`` (the demo, at most 10 minutes on 2 cores): Fashion-MNIST,
  4 seeds, 4,000 pretraining images, 2 epochs at batch 128, ResNet-18 at width 0.25 (r is
  128-d) with the "half" stem (a 3x3 stride-2 convolution and no max-pool: layer4 sees a 2x2
  map at 28 px, where the ImageNet stem leaves it 1x1), the paper's 128-d embedding (as wide
  as r here: Fig. 2 is judged on the paper's z; issue 23 withdrew the premise that r must be
  wider), the linear encoders on the pixels at 400 steps, 30-epoch probes on 100 labelled images per class
  (weight decay chosen on 200 validation images per class), no all-labels row, no d0 sweep.
* ``cpu`` (at most 90 minutes on 2 cores; 50 minutes measured): the same network and 128-d
  embedding, 3 seeds, 3 epochs of all 60,000 training images at the paper's batch-size rule
  (256) in channels_last memory format, 100-epoch probes on 100 labelled images per class
  (weight decay chosen on 500 validation images per class), a second probe row trained on every label but
  the validation split (10x fewer epochs), the theory lab at its full lengths, the linear
  encoders on the pixels at 2,000 steps.
* ``full``: one GPU (or several under ``torchrun``; rank 0 probes and writes the report). All of
  Fashion-MNIST (or ``--dataset cifar10 --data-root DIR``), 3 seeds, ResNet-18 at width 1 with
  the small-image stem, 100 epochs, a 128-d embedding, 100-epoch probes, and the d0 sweep.

The probe protocol (:mod:`dimcollapse.probe.protocol`) is the same at every scale: every row
(each method, raw pixels, a randomly initialised network) is trained on one fixed
class-balanced labelled subset, its weight decay chosen on a validation split carved from the
training images; the test images are scored once.

On a CPU the runs go to parallel single-threaded worker processes: on a 2-core machine two
processes of one thread each trained 4.3 times as many images per second as one process with
two threads (``benchmarks/bench_cpu_step.py --processes``).

Modules: ``scales`` (the scale table, the settings asked for), ``plan`` (the resolved settings,
the runs), ``stages`` (a stage's
task, the stage cache, how far training got), ``run_stage``, ``baselines``, ``toys`` (the three
kinds of stage), ``protocol_data`` (the probe protocol's splits and features), ``workers`` (the
stage tasks here or in a pool of worker processes), ``execute`` (:func:`reproduce`); versions
and hardware come from :func:`dimcollapse.runtime.environment`; ``reproduce.json`` as types
and the output layout live below this package and the report, in :mod:`dimcollapse.manifest`.

Names are imported when first used, so that :mod:`.scales` (read by ``reproduce --help``) can be
imported without torch.
"""

from __future__ import annotations

from dimcollapse.lazy import lazy_exports

#: Each public name and the module that defines it, imported when the name is first read.
_EXPORTS = {
    "ABLATION_METHODS": "dimcollapse.methods",
    "D0_DIVISORS": "dimcollapse.manifest.settings",
    "FORMAT": "dimcollapse.manifest",
    "FORMAT_VERSION": "dimcollapse.manifest",
    "METHODS": "dimcollapse.methods",
    "Manifest": "dimcollapse.manifest",
    "PAPER_SUBVECTOR_TOP1": "dimcollapse.methods",
    "PAPER_TOP1": "dimcollapse.methods",
    "PLANNED_METHODS": "dimcollapse.methods",
    "SCALES": "dimcollapse.manifest.settings",
    "SCALE_DEFAULTS": "dimcollapse.manifest.settings",
    "STAGE_FILE": "dimcollapse.reproduce.stages",
    "STAGE_FORMAT": "dimcollapse.reproduce.stages",
    "TABLE1_METHODS": "dimcollapse.methods",
    "TOY_SCENARIOS": "dimcollapse.reproduce.toys",
    "Plan": "dimcollapse.manifest.settings",
    "ReproduceLayout": "dimcollapse.manifest",
    "ReproduceSettings": "dimcollapse.reproduce.scales",
    "RunPlan": "dimcollapse.reproduce.plan",
    "plan_runs": "dimcollapse.reproduce.plan",
    "reproduce": "dimcollapse.reproduce.execute",
    "resolve_plan": "dimcollapse.reproduce.plan",
    "run_names": "dimcollapse.reproduce.plan",
    "run_toys": "dimcollapse.reproduce.toys",
    "train_config": "dimcollapse.reproduce.plan",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
