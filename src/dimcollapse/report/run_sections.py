"""The report's sections about the run itself: the opening summary, 1. Setup, 9. Wall time and
10. Files. (The sections that set our results against the paper's are in
:mod:`dimcollapse.report.table1` and :mod:`dimcollapse.report.paper_sections`.)

Each function appends one section, prose included, to a :class:`Document`; ``manifest`` is
``reproduce.json`` read (:class:`~dimcollapse.manifest.Manifest`).
"""

from __future__ import annotations

from typing import Any

from dimcollapse.manifest import Manifest, Settings
from dimcollapse.report.claims import equivalence_margin, how_judged
from dimcollapse.report.claims_section import verdict_summary
from dimcollapse.report.document import Document
from dimcollapse.report.numbers import duration, percent_with_interval, seeds_text
from dimcollapse.report.protocol_sections import missing_fields, setup_rows

#: What each scale can and cannot show (the report's opening paragraph).
SCALE_NOTES = {
    "quick": "This is a **quick** run, sized for a few minutes of a laptop CPU: a small "
    "network, a subset, few epochs. It shows the pipeline end to end and the effects that "
    "appear early (the spectra, the theory lab); it does not reproduce the paper's ImageNet "
    "numbers, and it cannot separate methods a point or two apart.",
    "cpu": "This is a **cpu** run, sized for at most 90 minutes of a 2-core CPU (this run's own "
    "time is in its wall-time section): several seeds per method, so that orderings can be "
    "judged; still a small network on a small dataset after a short pretraining, so the levels "
    "are not the paper's ImageNet numbers.",
    "full": "This is a **full** run (a whole dataset, a full-width ResNet-18, long training), "
    "still far smaller than the paper's ResNet-50 on ImageNet: absolute numbers differ; "
    "the orderings are what can be compared.",
}


def pretraining_images(settings: Settings) -> str:
    """How many training images pretraining saw: ``8,000`` or ``all``."""
    return f"{settings.subset:,}" if settings.subset else "all"


def opening(doc: Document, manifest: Manifest, claims: list[dict[str, Any]]) -> None:
    """The title, what was run, the verdicts at a glance and the best accuracy."""
    settings = manifest.settings
    doc.heading(
        1,
        "Reproduction report: Understanding Dimensional Collapse in Contrastive "
        "Self-Supervised Learning",
    )
    doc.paragraph(
        f"Jing, Vincent, LeCun, Tian (ICLR 2022), reproduced with `dimcollapse` at scale "
        f"**{settings.scale}**: {settings.dataset} ({pretraining_images(settings)} training "
        f"images), {settings.backbone} at width {settings.width} (representation r of "
        f"{settings.rep_dim} dimensions, DirectCLR's d0 = {settings.default_d0}), "
        f"{settings.epochs} pretraining epochs, {seeds_text(settings.seeds)}."
    )
    paper_claims = [c for c in claims if c.get("kind", "paper") == "paper"]
    doc.paragraph(
        f"**The paper's {len(paper_claims)} claims here: {verdict_summary(claims)}.** "
        + how_judged(equivalence_margin(manifest)["margin"])
        + " "
        + SCALE_NOTES.get(settings.scale, "")
    )
    if manifest.runs:
        _best_accuracy(doc, manifest)


#: Why the raw pixels may lead, for the datasets a study in the repository measured.
PIXELS_AHEAD = {
    "fashion-mnist": (
        ": fashion-mnist is largely linearly separable in pixel space, and this much "
        "pretraining has not caught up with that. What it takes, measured: the study in the "
        "repository's docs/experiments/fashion-mnist-collapse.md"
    ),
}


def _best_accuracy(doc: Document, manifest: Manifest) -> None:
    """The best run against the baselines, and why the raw pixels may win at a small scale."""
    baselines = manifest.baselines
    best = max(manifest.runs.values(), key=lambda r: r["probe"]["full"]["top1"])
    text = (
        f"Best offline linear top-1: {percent_with_interval(best['probe']['full'])}% "
        f"(`{best['name']}`)"
    )
    bars = (
        ("pixels", "raw pixels"),
        ("pixels-pca", "the pixels' principal components, as many as r has"),
        ("random", "a random backbone"),
    )
    for key, label in bars:
        if key in baselines:
            text += f"; {label}: {percent_with_interval(baselines[key]['probe'])}%"
    if (
        "pixels" in baselines
        and best["probe"]["full"]["top1"] < baselines["pixels"]["probe"]["top1"]
    ):
        text += (
            ". No pretrained backbone beats a linear classifier on the raw pixels here, under "
            "the same probe protocol (the same labelled images, the weight decay of each row "
            "chosen on the same validation split)"
        )
        text += PIXELS_AHEAD.get(
            manifest.settings.dataset, ": this much pretraining has not caught up with them"
        )
    doc.paragraph(text + ".")


def setup(doc: Document, manifest: Manifest) -> None:
    """1. Setup: the command, the machine and the settings."""
    doc.heading(2, "1. Setup")
    doc.paragraph("The exact command:")
    doc.code("dimcollapse reproduce" if manifest.command is None else manifest.command)
    doc.table(["item", "value"], _machine_rows(manifest) + _settings_rows(manifest.settings))
    missing = missing_fields(manifest)
    if missing:
        doc.paragraph(
            "Not recorded by this run (its `reproduce.json` predates them), so not shown: "
            + "; ".join(missing)
            + "."
        )
    doc.how_to_read(
        "Every number below comes from this run; `reproduce.json` holds them all, machine-"
        "readable. Pretraining follows the paper's recipe where it applies (InfoNCE with "
        "temperature 0.1, LARS, warm-up and cosine schedule; see `dimcollapse train --help`). "
        "The offline probes train a fresh linear classifier on frozen backbone features of "
        "training images (with a probe protocol: the labelled subset, its weight decay chosen "
        "on a validation split of training images; section 2) and test it on held-out images."
    )


def _machine_rows(manifest: Manifest) -> list[list[Any]]:
    env = manifest.environment  # dimcollapse.runtime.environment()'s keys
    execution = manifest.execution
    return [
        ["dimcollapse", env.get("dimcollapse", "?")],
        ["torch / torchvision", f"{env.get('torch', '?')} / {env.get('torchvision', '?')}"],
        ["python", env.get("python", "?")],
        ["platform", env.get("platform", "?")],
        [
            "CPU",
            f"{env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} CPUs, "
            f"{env.get('cpus_usable', '?')} usable)",
        ],
        ["GPU", ", ".join(env.get("gpus") or []) or "none"],
        ["device used", "?" if execution.device is None else execution.device],
        [
            "parallel jobs",
            f"{1 if execution.jobs is None else execution.jobs} (threads per job: "
            f"{execution.threads_per_job or 'default'})",
        ],
    ]


_STEMS = {
    None: "stem by image size",
    True: "small-image stem",
    False: "standard stem (stride 2 + max-pool)",
    "imagenet": "standard stem (7x7 stride 2 + max-pool)",
    "cifar": "small-image stem (3x3 stride 1, no max-pool)",
    "half": "half stem (3x3 stride 2, no max-pool)",
}


def _settings_rows(settings: Settings) -> list[list[Any]]:
    data_root = settings.data_root
    test_subset = settings.test_subset
    return [
        ["seeds", ", ".join(str(x) for x in settings.seeds)],
        ["dataset", f"{settings.dataset}" + (f" from {data_root}" if data_root else "")],
        ["pretraining images", pretraining_images(settings)],
        [
            "backbone",
            f"{settings.backbone} width {settings.width}, "
            + _STEMS[settings.stem or settings.small_stem],
        ],
        ["epochs / batch", f"{settings.epochs} / {settings.batch_size}"],
        [
            "test images (spectra, final probe scores only)",
            f"{test_subset:,}" if test_subset else "the whole test split",
        ],
        [
            "offline probe",
            f"linear, {settings.probe_epochs} epochs on frozen, standardised "
            "features (SGD, cosine); kNN k=20 and 200 (cosine, weighted)",
        ],
        ["theory lab steps", settings.toy_steps or "the lab's defaults"],
        *setup_rows(settings),
    ]


def wall_time(doc: Document, manifest: Manifest) -> None:
    """9. Wall time: each run's stages, then the totals."""
    timing = manifest.timing
    reused = set(timing.reused)
    rows = []
    for name, run in manifest.runs.items():
        mark = " (reused)" if any(t.startswith(f"run:{name}:") for t in reused) else ""
        k = len(run.get("seeds") or [run])
        each = f", sum of {k} seeds" if k > 1 else ""
        for stage, label in (("train", "pretraining"), ("probe", "probes and spectra")):
            seconds = run["seconds"][stage]
            per_seed = f"; {duration(seconds / k)} per seed" if k > 1 else ""
            rows.append([f"`{name}`: {label}{each}{mark}", duration(seconds) + per_seed])
    baselines_mark = " (reused)" if any(t.startswith("baselines") for t in reused) else ""
    rows += [
        ["baselines" + baselines_mark, duration(timing.baselines_s)],
        ["theory lab" + (" (reused)" if "toys" in reused else ""), duration(timing.toys_s)],
        ["all pretraining (sum over runs)", duration(timing.pretraining_s)],
        ["all probes (sum over runs)", duration(timing.probes_s)],
        ["all stages, wall (parallel jobs overlap)", duration(timing.stages_wall_s)],
        ["report", duration(timing.report_s)],
        ["**total, this invocation**", duration(timing.total_wall_s)],
    ]
    doc.heading(2, "9. Wall time")
    doc.table(["stage", "wall time"], rows)
    doc.how_to_read(
        "A method's times are the sum over its seeds (each seed is one pretraining run), with "
        "the mean per seed beside it. "
        "Stage times are measured inside each stage; with parallel jobs they overlap, so the "
        "sum exceeds the wall time of all stages. Reused stages show the time they took when "
        "they ran. Other processes on the machine slow everything down."
    )


def files(doc: Document) -> None:
    """10. Files: what the output directory holds."""
    doc.heading(2, "10. Files")
    doc.bullets(
        [
            "`reproduce.json`: settings, environment and every result",
            "`runs/<name>/seed-<seed>/`: each pretraining run (`metrics.jsonl`, `spectra.jsonl`, `config.yaml`, "
            "`checkpoints/final.pt`) and its `reproduce_stage.json`",
            "`baselines/`, `toys/`, `figures/`: the baselines, the theory lab's output, the figures",
        ]
    )
