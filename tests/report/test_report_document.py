"""The report a tiny reproduction writes (``reproduce`` runs it once per session: the
``tiny_reproduction`` fixture in tests/conftest.py): every section, table row and figure."""

from __future__ import annotations

import re

from tiny_runs import markdown_images

from dimcollapse.reproduce import PLANNED_METHODS

HEADINGS = (
    "# Reproduction report",
    "## 1. Setup",
    "## 2. Table 1 analogue",
    "### The paper's claims, checked",
    "## 3. Dimensional collapse of the embedding (Fig. 2)",
    "## 4. Theory lab",
    "## 5. A projector keeps the representation from collapsing (Fig. 7b)",
    "## 6. DirectCLR against the SimCLR variants (Fig. 9)",
    "## 7. DirectCLR's sub-vector size d0",
    "## 8. Over training",
    "## 9. Wall time",
)


FIGURES = (
    "figures/fig2_embedding_spectrum.png",
    "figures/fig7b_representation_spectra.png",
    "figures/fig9_representation_spectra.png",
    "figures/ablation_representation_spectra.png",
    "figures/training_curves.png",
    "figures/accuracy.png",
)


def test_report_has_every_section_table_row_and_figure(tiny_reproduction):
    out, manifest, _ = tiny_reproduction
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for heading in HEADINGS:
        assert heading in md, heading
    # the Table 1 analogue: every method, DirectCLR's sub-vector probe, both baselines
    for method in PLANNED_METHODS:
        assert f"| `{method}` |" in md, method
    assert "| `directclr` (probe on r[:" in md
    assert "| `pixels` | baseline: raw pixels |" in md
    assert "| `random` | baseline: random backbone |" in md
    for value in ("66.5", "61.1", "51.5", "62.7", "62.3", "60.2", "47.9"):
        assert f"| {value} |" in md, value
    # figures: every one drawn, referenced by the Markdown, embedded in the HTML
    images = markdown_images(md)
    for fig in FIGURES:
        assert fig in images, fig
    for rel in images:
        assert rel.endswith(".png") and (out / rel).is_file(), rel
    assert html.count('<img src="data:image/png;base64,') == len(images)
    assert 'src="figures/' not in html and "<script" not in html  # self-contained
    # the quick scale says the sweep was skipped; the setup names the command and versions
    assert "Skipped at this scale" in md
    assert "dimcollapse reproduce --scale quick --dataset digits" in md
    for item in (
        "torch / torchvision",
        "python",
        "CPU",
        "GPU",
        "seeds",
        "**total, this invocation**",
    ):
        assert f"| {item} |" in md, item
    assert md.count("**How to read this.**") >= 8
    # the verdict count up top, how it was computed, intervals in the table and the claims
    assert re.search(r"\*\*The paper's \d+ claims here: [^*]*(hold|fail|inconclusive)", md)
    assert "paired differences" in md and "95% Student-t interval" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| `simclr-mlp` |"))
    assert re.search(r"\d+\.\d \[-?\d+\.\d, \d+\.\d\]", row), row
    assert any(v in md for v in ("| holds |", "| **fails** |", "| inconclusive |"))
