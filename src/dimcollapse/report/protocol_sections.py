"""The report's account of the evaluation protocol and the network's geometry, each shown only
when ``reproduce.json`` records it (older files lack them, and the report says so):

* the probe protocol: how many labelled images the main linear row trains on
  (``settings.probe_labels``), the validation split that chooses its weight decay
  (``settings.val_size``), and the weight decay chosen for each row, seed by seed;
* the side of the square feature map after each stage of the backbone
  (``settings.feature_maps``), and pretraining's memory format when the scale asked for one
  (``settings.channels_last``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dimcollapse.manifest import Manifest, Settings
from dimcollapse.report.document import Document
from dimcollapse.report.numbers import percent
from dimcollapse.report.tail import has_normalized

#: The probe rows of a run (``probe.<row>``) and of a baseline (its own key), in table order.
RUN_ROWS = (("full", "main (labelled subset)"), ("all_labels", "all labels"))
BASELINE_ROWS = (("probe", "main (labelled subset)"), ("probe_all_labels", "all labels"))


def has_all_labels_row(manifest: Manifest) -> bool:
    """Some run or baseline has the second probe row, trained on all training labels."""
    runs = manifest.runs.values()
    baselines = [b for b in manifest.baselines.values() if isinstance(b, Mapping)]
    return any("all_labels" in r.get("probe", {}) for r in runs) or any(
        "probe_all_labels" in b for b in baselines
    )


def labels_text(manifest: Manifest) -> str:
    """The main row's labelled images, ``1,000`` (``settings.probe_labels``, else a run's)."""
    labels = manifest.settings.probe_labels
    if labels is None:
        for run in manifest.runs.values():
            labels = run.get("probe", {}).get("full", {}).get("labels")
            if labels is not None:
                break
    return "n/a" if labels is None else f"{int(labels):,}"


def feature_maps_text(settings: Settings) -> str | None:
    """``input 28, conv1 28, ..., layer4 4 (px, square)``; None when not recorded."""
    maps = settings.feature_maps
    if not maps:
        return None
    return ", ".join(f"{stage} {side}" for stage, side in maps.items()) + " (px, square maps)"


def setup_rows(settings: Settings) -> list[list[Any]]:
    """Rows for the setup table: the probe protocol and the feature maps, when recorded."""
    rows = []
    if settings.probe_labels is not None:
        rows.append(
            [
                "labelled images (main probe row)",
                f"{int(settings.probe_labels):,}, class-balanced",
            ]
        )
    if settings.val_size is not None:
        rows.append(
            [
                "validation split (chooses the weight decay)",
                f"{int(settings.val_size):,} training images, never trained on by the probe",
            ]
        )
    if settings.all_labels_row is False:
        rows.append(["all-labels probe row", "not run at this scale"])
    maps = feature_maps_text(settings)
    if maps:
        rows.append(["feature map after each stage", maps])
    if settings.channels_last is not None:
        rows.append(["pretraining memory format", _MEMORY_FORMATS[settings.channels_last]])
    return rows


_MEMORY_FORMATS = {
    True: "channels_last (asked for, on the CPU too)",
    False: "contiguous (channels_last off, on a GPU too)",
}


def _weight_decays(row: Mapping[str, Any] | None) -> str:
    """The chosen weight decay per seed, ``1e-04, 1e-03, 1e-04``."""
    if not row:
        return "-"
    per_seed = row.get("weight_decay_per_seed")
    if per_seed is None:
        per_seed = [row.get("weight_decay")]
    if all(w is None for w in per_seed):
        return "n/a"
    return ", ".join("n/a" if w is None else f"{float(w):g}" for w in per_seed)


def _val_top1(row: Mapping[str, Any] | None) -> str:
    return "-" if not row or row.get("val_top1") is None else percent(row["val_top1"])


def _labels(row: Mapping[str, Any] | None) -> str:
    return "-" if not row or row.get("labels") is None else f"{int(row['labels']):,}"


def probe_protocol(doc: Document, manifest: Manifest) -> None:
    """The probe protocol: splits, and each row's chosen weight decay (when recorded)."""
    rows = []
    for name, run in manifest.runs.items():
        for key, label in RUN_ROWS:
            row = run.get("probe", {}).get(key)
            if row and "weight_decay" in row:
                rows.append([f"`{name}`", label, _labels(row), _weight_decays(row), _val_top1(row)])
    for name, baseline in manifest.baselines.items():
        if not isinstance(baseline, Mapping):
            continue
        for key, label in BASELINE_ROWS:
            row = baseline.get(key)
            if isinstance(row, Mapping) and "weight_decay" in row:
                rows.append([f"`{name}`", label, _labels(row), _weight_decays(row), _val_top1(row)])
    doc.heading(3, "The probe protocol")
    if not rows:
        doc.paragraph(
            "This run predates the probe protocol: its linear probe trained on every pretraining "
            "image's label with a fixed weight decay, and `reproduce.json` records no labelled "
            "subset, validation split or chosen weight decay."
        )
        return
    doc.table(
        [
            "row",
            "probe",
            "labelled images",
            "weight decay chosen (per seed)",
            "validation top-1 (%)",
        ],
        rows,
    )
    val = manifest.settings.val_size
    doc.how_to_read(
        f"The main row trains the linear probe on a fixed, class-balanced subset of "
        f"{labels_text(manifest)} labelled training images, the same for every row, so rows "
        "differ only in their features; the all-labels row trains on every training label "
        "outside the validation split. Each row's weight decay is chosen on a validation split "
        + (f"of {int(val):,} training images " if val is not None else "")
        + "(the best validation accuracy; ties go to the larger weight decay); only the "
        "chosen probe is scored on the test images, so the test set decides nothing."
    )


def missing_fields(manifest: Manifest) -> list[str]:
    """What a ``reproduce.json`` from before the probe protocol and the row-normalised spectra
    lacks, in words (empty for a current one)."""
    settings = manifest.settings
    runs = list(manifest.runs.values())
    missing = []
    if not settings.feature_maps:
        missing.append("the feature map size after each stage of the backbone")
    if settings.probe_labels is None and not any(
        "labels" in r.get("probe", {}).get("full", {}) for r in runs
    ):
        missing.append(
            "the probe protocol (labelled subset, validation split, chosen weight decay)"
        )
    if not has_all_labels_row(manifest) and settings.all_labels_row is not False:
        missing.append("the all-labels probe row")
    if runs and not any(has_normalized(r, "representation") for r in runs):
        missing.append(
            "the spectra of the row-normalised vectors (the paper's measure): collapse is "
            "counted on the raw vectors"
        )
    return missing
