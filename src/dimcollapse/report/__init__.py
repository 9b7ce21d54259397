"""The reproduction report: Markdown and one self-contained HTML file, from ``reproduce.json``.

:func:`write_report` draws the figures into ``OUT/figures``, then writes ``OUT/report.md``
(figures linked as PNG files beside it) and ``OUT/report.html`` (the same content, figures
embedded as base64 PNG, inline CSS: it can be mailed or archived alone). Both come from one list
of blocks, so they never disagree.

It also checks the paper's claims against our numbers (:func:`check_claims`): the orderings of
Table 1 and section 6.3, and the collapse seen in Figs. 2, 7b and 9 (the collapsed tail at
several thresholds), each holding, failing or inconclusive in this run, at 95% per claim and
after Holm's adjustment over the paper's claims. Small runs are not expected to reproduce ImageNet numbers; the report says so.

Modules: :mod:`~dimcollapse.report.write` (what goes into OUT, the sections in order),
:mod:`~dimcollapse.report.run_sections`, :mod:`~dimcollapse.report.table1`,
:mod:`~dimcollapse.report.paper_sections` and :mod:`~dimcollapse.report.protocol_sections` (one
function per section, with its prose),
:mod:`~dimcollapse.report.claims` and :mod:`~dimcollapse.report.collapse_claims` (the verdicts,
both through :mod:`~dimcollapse.report.judge`),
:mod:`~dimcollapse.report.tail` (the collapsed tail at several thresholds),
:mod:`~dimcollapse.report.figures` and :mod:`~dimcollapse.report.spectrum_figures` (the PNG
figures), :mod:`~dimcollapse.report.document` (blocks to Markdown and HTML),
:mod:`~dimcollapse.report.numbers` (how numbers are written),
:mod:`~dimcollapse.report.run_groups` (the paper's runs, by group: every section, figure and claim
about the paper reads them only) and :mod:`~dimcollapse.report.extras` (the section beyond the
paper: the non-contrastive methods of ``reproduce --extras``, when they ran).
"""

from __future__ import annotations

from dimcollapse.report.claims import SAME_MARGIN_POINTS, check_claims
from dimcollapse.report.write import draw_figures, write_report

__all__ = ["SAME_MARGIN_POINTS", "check_claims", "draw_figures", "write_report"]
