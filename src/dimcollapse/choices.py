"""Choices and defaults that the command line's ``--help`` shows, in a module that imports nothing.

``dimcollapse --help`` and every ``dimcollapse COMMAND --help`` build the whole parser, and the
modules these values belong to import torch (about 3 s of a 3.5 s ``probe --help``, measured on 2
shared CPU cores). So they are defined here, once, and those modules import them from here:
:mod:`dimcollapse.spectrum` (``PRECISIONS``, ``DEFAULT_REL_TOL``), :mod:`dimcollapse.probe`
(``SPACES``, ``FEATURE_SETS``), :mod:`dimcollapse.data.eval_loader` (``FEATURE_BATCH``),
:mod:`dimcollapse.backbones` (``STEMS``) and :mod:`dimcollapse.projectors` (``PAPER_PROJ_OUT``).
``tests/test_cli.py`` checks that building the parser imports no torch.
"""

from __future__ import annotations

#: Precisions of the spectrum's per-batch outer products (see
#: :class:`~dimcollapse.spectrum.SpectrumAccumulator`).
SPECTRUM_PRECISIONS = ("auto", "float32", "float64")

#: A dimension is collapsed when sigma_k < DEFAULT_REL_TOL * sigma_1 (Eq. 1's spectrum).
#: sigma here are eigenvalues of the covariance, i.e. *variances*, so 1e-5 means a direction whose
#: standard deviation is below 0.3% of the leading one. Why this value: a dimension that truly
#: collapsed in a float32 network sits near float32 rounding noise (~1e-12 relative variance) and
#: one from bf16 training near bf16 rounding noise (~1e-6 relative variance), both well below 1e-5;
#: while healthy representations with a power-law spectrum (alpha ~ 1, d = 2048) keep their last
#: eigenvalue near 5e-4 of the first, well above it. ``--rel-tol`` changes it.
DEFAULT_REL_TOL = 1e-5

#: Where frozen features are read: the backbone output r or the head output z.
SPACES = ("representation", "embedding")

#: Which part of r the offline probe sees: all of it, or DirectCLR's sub-vector r[:, :d0].
FEATURE_SETS = ("full", "subvector")

#: Images per forward pass wherever frozen features are taken (probes, embed, the held-out
#: spectra of each epoch, the baselines).
FEATURE_BATCH = 512

#: The backbone's stems (:func:`dimcollapse.backbones.resolve_stem`).
STEMS = ("imagenet", "cifar", "half")

#: The paper's embedding size (its projector's output; Fig. 2's d = 128).
PAPER_PROJ_OUT = 128
