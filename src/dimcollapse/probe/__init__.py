"""Offline evaluation of frozen features: linear probe, kNN probe, feature extraction.

*Offline* here means: after pretraining, on a frozen backbone (``model.eval()``, no gradients),
with a fresh linear classifier trained from scratch. It is not the *online* probe of
:mod:`dimcollapse.train` (``online_probe_top1`` in ``metrics.jsonl``), a linear layer trained
alongside the backbone on ``r.detach()`` of augmented views and measured on a held-out subset each
epoch. The keys ``top1``/``top5`` of every result here are offline linear-probe accuracies, and
every result carries ``probe: "offline"``.

One concept per module, each documenting its choices:

* :mod:`~dimcollapse.probe.features`: frozen features of a model over a dataset, the checks on
  (features, labels) pairs, and the standardisation with the train set's statistics;
* :mod:`~dimcollapse.probe.linear`: the linear probe and its recipe (the paper code's);
* :mod:`~dimcollapse.probe.knn`: the weighted cosine kNN probe;
* :mod:`~dimcollapse.probe.offline`: both probes of precomputed features in one result;
* :mod:`~dimcollapse.probe.augmented`: the linear probe trained on augmented views;
* :mod:`~dimcollapse.probe.run`: probing a trained run's checkpoint on its own dataset.

Accuracies are fractions in [0, 1]; ``top5`` is ``None`` for fewer than 5 classes.
"""

from dimcollapse.probe.features import SPACES, STD_REL_FLOOR, extract_features, standardization
from dimcollapse.probe.knn import DEFAULT_KS, KNN_TEMPERATURE, knn_predict, knn_probe
from dimcollapse.probe.linear import linear_probe
from dimcollapse.probe.offline import probe_features
from dimcollapse.probe.run import FEATURE_SETS, load_run_data, probe_run, result_dir

__all__ = [
    "DEFAULT_KS",
    "FEATURE_SETS",
    "KNN_TEMPERATURE",
    "SPACES",
    "STD_REL_FLOOR",
    "extract_features",
    "knn_predict",
    "knn_probe",
    "linear_probe",
    "load_run_data",
    "probe_features",
    "probe_run",
    "result_dir",
    "standardization",
]
