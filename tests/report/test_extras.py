"""Runs beyond the paper (``reproduce --extras``: VICReg, Barlow Twins) in the report: the runs
split by group, the paper's sections and claims unchanged by them, their own section (table,
sentence, figure) only when they exist, and the committed reports re-rendered byte-identical.

The extra runs are the committed quick-scale run's SimCLR records, copied under the extra
methods with numbers of their own (the best top-1 of all, a collapsed z), so that any leak into
the paper's sections would show."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from tiny_runs import markdown_images

from dimcollapse.manifest import Manifest
from dimcollapse.report import check_claims, write_report
from dimcollapse.report.extras import FIGURE, HEADING, _collapse_text, section_runs
from dimcollapse.report.numbers import percent_with_interval
from dimcollapse.report.run_groups import (
    EXTRA_GROUPS,
    PAPER_GROUPS,
    paper_manifest,
    runs_of_groups,
    split_runs,
)
from dimcollapse.report.write import build_document

RESULTS = Path(__file__).parents[2] / "docs" / "results"
QUICK = RESULTS / "fashion-mnist-quick"
OLD = Path(__file__).parents[1] / "fixtures" / "reproduce-v1-cpu-2026-11.json"

#: The extra runs: (method, the SimCLR run copied, its linear top-1, its z's collapsed dims).
EXTRAS = (("vicreg", "simclr-mlp", 0.97, 7), ("barlow-twins", "simclr-linear", 0.96, 0))


def _quick() -> dict:
    return json.loads((QUICK / "reproduce.json").read_text())


def _extra_run(source: dict, method: str, top1: float, z_collapsed: int) -> dict:
    """``source`` as a run of ``method`` (group extra): every seed's linear top-1 at ``top1``
    and ``z_collapsed`` dims of its row-normalised z collapsed by the cliff rule."""
    run = copy.deepcopy(source)
    run.update(name=method, method=method, group="extra")
    for seed in run["seeds"]:
        seed.update(name=method, method=method, group="extra")
        seed["probe"]["full"]["top1"] = top1
        seed["embedding_normalized"]["collapsed_dims"] = z_collapsed
        seed["embedding_normalized"]["dead_dims"] = []
    run["probe"]["full"].update(top1=top1, top1_ci95=[top1 - 0.01, top1 + 0.01])
    run["embedding_normalized"]["collapsed_dims"] = float(z_collapsed)
    return run


def _with_extras(data: dict) -> dict:
    data = copy.deepcopy(data)
    for method, source, top1, z_collapsed in EXTRAS:
        data["runs"][method] = _extra_run(data["runs"][source], method, top1, z_collapsed)
    return data


def _render(data: dict, out: Path) -> tuple[str, str, list[dict]]:
    shutil.copytree(QUICK / "toys", out / "toys")  # the theory lab's figures
    claims = write_report(data, out)
    return (out / "report.md").read_text(), (out / "report.html").read_text(), claims


def _without_section(text: str, start: str, end: str) -> str:
    """``text`` without the part from ``start`` up to (not including) ``end``."""
    i = text.index(start)
    return text[:i] + text[text.index(end, i) :]


def _section(md: str) -> str:
    return md[md.index(f"## {HEADING}") : md.index("## 9. Wall time")]


def _table(md: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first table of ``md``."""
    lines = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| ---")]
    cells = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return cells[0], cells[1:]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The committed quick run rendered with and without the extra runs."""
    data = _quick()
    assert not split_runs(data).extra  # the committed run has none
    out = {}
    for key, manifest in (("with", _with_extras(data)), ("without", data)):
        directory = tmp_path_factory.mktemp(f"report-{key}")
        out[key] = (directory, manifest, *_render(manifest, directory))
    return out


# ---- the split ------------------------------------------------------------------------------


def test_runs_split_by_group_never_by_name():
    runs = {
        "b": {"method": "vicreg", "group": "extra"},
        "vicreg": {"method": "simclr-mlp", "group": "table1"},  # a name says nothing
        "c": {"method": "fixed-lowrank", "group": "ablation"},
        "directclr-d0-4": {"method": "directclr", "group": "d0-sweep"},
        "old": {"method": "simclr-none"},  # no group recorded: the paper's
        "d": {"method": "barlow-twins", "group": "extra"},
        "e": {"method": "simclr-none", "group": "some-later-group"},  # in neither
    }
    split = split_runs({"runs": runs})
    assert list(split.paper) == ["vicreg", "c", "directclr-d0-4", "old"]
    assert list(split.extra) == ["b", "d"]
    assert PAPER_GROUPS == ("table1", "ablation", "d0-sweep") and EXTRA_GROUPS == ("extra",)
    manifest = Manifest.from_dict({"runs": runs})
    assert list(paper_manifest(manifest).runs) == list(split.paper)
    assert list(manifest.runs) == list(runs)  # the manifest itself is left alone
    # by group, in the table's order; a run without a group counts in its method's
    assert [r["method"] for r in runs_of_groups(runs, ("table1", "extra"))] == [
        "simclr-mlp",
        "simclr-none",
        "vicreg",
        "barlow-twins",
    ]


def test_a_manifest_without_group_fields_is_all_the_papers(tmp_path):
    data = json.loads(OLD.read_text())
    bare = copy.deepcopy(data)
    for run in bare["runs"].values():
        del run["group"]
        for seed in run.get("seeds", []):
            seed.pop("group", None)
    split = split_runs(bare)
    assert list(split.paper) == list(data["runs"]) and not split.extra
    assert not section_runs(Manifest.from_dict(bare))
    claims = check_claims(data)
    assert check_claims(bare) == claims and any(c["verdict"] != "inconclusive" for c in claims)
    texts = [build_document(d, tmp_path, {}, claims).markdown() for d in (data, bare)]
    assert texts[0] == texts[1] and HEADING not in texts[0]


# ---- the paper's report does not see the extra runs -----------------------------------------


def test_the_papers_report_and_claims_are_the_same_with_and_without_extras(rendered):
    _, data, md, html, claims = rendered["with"]
    _, _, md_without, html_without, claims_without = rendered["without"]
    # the extra runs would stand out anywhere they leaked: the best top-1 of all
    best_paper = max(r["probe"]["full"]["top1"] for r in split_runs(data).paper.values())
    assert all(data["runs"][m]["probe"]["full"]["top1"] > best_paper for m, *_ in EXTRAS)
    assert claims == claims_without
    assert not any(m in json.dumps(claims) for m, *_ in EXTRAS)
    assert f"## {HEADING}" in md and HEADING not in md_without
    assert _without_section(md, f"## {HEADING}", "## 9. Wall time") == md_without
    anchor = '<h2 id="beyond-the-paper-non-contrastive-methods">'
    assert anchor in html
    assert _without_section(html, anchor, '<h2 id="9-wall-time">') == html_without
    outside = _without_section(md, f"## {HEADING}", "## 9. Wall time")
    assert "vicreg" not in outside and "barlow-twins" not in outside


def test_a_report_without_extras_has_no_section_and_no_extras_figure(rendered):
    directory, data, md, html, _ = rendered["without"]
    assert not section_runs(Manifest.from_dict(data))
    assert not (directory / FIGURE).exists() and FIGURE not in md and HEADING not in html


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.iterdir()))
def test_the_committed_reports_re_render_byte_identical(tmp_path, name):
    out = tmp_path / name
    shutil.copytree(RESULTS / name, out)
    write_report(Manifest.read(out), out, figures=False)  # the committed figures kept
    for report in ("report.md", "report.html"):
        assert (out / report).read_bytes() == (RESULTS / name / report).read_bytes(), report


# ---- the section ----------------------------------------------------------------------------


def test_the_section_has_one_row_per_method_of_table1_and_extra(rendered):
    _, data, md, _, _ = rendered["with"]
    header, rows = _table(_section(md))
    assert header == [
        "method",
        "loss",
        "head",
        "linear top-1 (%) [95% CI]",
        "kNN top-1 k=20 (%) [95% CI]",
        "RankMe of r [95% CI]",
        "collapsed dims of r (cliff rule; dead apart)",
        "RankMe of z [95% CI]",
        "collapsed dims of z (cliff rule; dead apart)",
        "dim of z",
    ]
    # Table 1's methods, then the extra ones; no ablation, no baseline
    names = ["simclr-mlp", "simclr-linear", "simclr-none", "directclr", "vicreg", "barlow-twins"]
    assert [row[0] for row in rows] == [f"`{n}`" for n in names]
    assert all(len(row) == len(header) for row in rows)
    vicreg = dict(zip(header, rows[4]))
    run = data["runs"]["vicreg"]
    assert vicreg["loss"] == "VICReg" and vicreg["head"] == "3-layer expander (trainable)"
    assert vicreg[header[3]] == "97.0 [96.0, 98.0]" == percent_with_interval(run["probe"]["full"])
    assert vicreg[header[4]] == percent_with_interval(run["probe"]["full"], "knn_top1_k20")
    assert vicreg["collapsed dims of z (cliff rule; dead apart)"] == "7/128"
    assert vicreg["dim of z"] == "128"
    rankme = run["representation_normalized"]["rankme"]
    assert vicreg["RankMe of r [95% CI]"].startswith(f"{rankme:.1f} [")
    directclr = dict(zip(header, rows[3]))
    d0 = data["runs"]["directclr"]["d0"]
    assert directclr["dim of z"] == str(d0) and directclr["head"] == f"none (loss on r[:d0={d0}])"
    assert directclr["collapsed dims of z (cliff rule; dead apart)"].endswith(f"/{d0}")


def test_the_section_says_what_it_is_and_judges_nothing(rendered):
    section = _section(rendered["with"][2])
    for words in (
        "Bardes",
        "ICLR 2022",
        "25 / 25 / 1",
        "Zbontar",
        "ICML 2021",
        "lambda = 0.005",
        "128 wide here: 1 x r's 128",
        "it measures neither",
        "**nothing here is a verdict**",
        "95% Student-t intervals",
    ):
        assert words in section, words
    assert "holds" not in section and "fails" not in section
    # the sentence is read off the numbers: vicreg's 7 of 128, barlow-twins' none
    sentence = next(p for p in section.split("\n\n") if p.startswith("In this run"))
    assert "`vicreg` (7 of 128)" in sentence
    z_part = sentence.split(";")[0]
    assert "`barlow-twins`" in z_part.split("none in")[1]


def test_the_sentence_follows_the_counts():
    def run(name: str, r: int, z: int) -> dict:
        spectrum = {"rankme": 1.0, "dim": 16}
        return {
            "name": name,
            "method": name,
            "representation": {**spectrum, "collapsed_dims": r},
            "embedding": {**spectrum, "collapsed_dims": z},
        }

    text = _collapse_text([run("vicreg", 0, 3), run("barlow-twins", 0, 5)])
    assert "the embedding z has collapsed dimensions in every method: `vicreg` (3 of 16)" in text
    assert "`barlow-twins` (5 of 16)" in text
    assert "the representation r has no cliff in any of these methods" in text
    text = _collapse_text([run("vicreg", 2, 0), run("barlow-twins", 0, 0)])
    assert "the embedding z has no cliff" in text
    assert "r has collapsed dimensions in `vicreg` (2 of 16), none in `barlow-twins`" in text


def test_the_extras_figure_is_drawn_and_embedded(rendered):
    directory, _, md, html, _ = rendered["with"]
    png = directory / FIGURE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert FIGURE in markdown_images(_section(md))
    assert html.count('<img src="data:image/png;base64,') == len(markdown_images(md))
    # the paper's figures are the same files with and without the extra runs
    other = rendered["without"][0]
    for path in (directory / "figures").glob("*.png"):
        if path.name != Path(FIGURE).name:
            assert path.read_bytes() == (other / "figures" / path.name).read_bytes(), path.name


def test_only_the_methods_present_are_shown():
    data = _with_extras(_quick())
    for name in ("simclr-linear", "barlow-twins"):
        del data["runs"][name]
    names = [r["name"] for r in section_runs(Manifest.from_dict(data))]
    assert names == ["simclr-mlp", "simclr-none", "directclr", "vicreg"]
    assert re.search(r"^In this run", _collapse_text(section_runs(Manifest.from_dict(data))))
