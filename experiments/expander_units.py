"""Why an expander's embedding z loses rank: count the hidden units of the VICReg / Barlow
Twins expander (``projectors.ExpanderHead``) that never fire on held-out images.

    python experiments/expander_units.py RUN [RUN ...] [--images 2000]

For each run directory (``dimcollapse train`` layout, a method with an expander head), feeds
``--images`` test images through the backbone and the expander and prints, per hidden layer,
how many of its ReLU units are zero on every image (dead), and the numerical rank of z
(singular values of the centred z above 1e-6 of the largest, float64). z = W3 h2 has rank at
most the live units of h2.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from dimcollapse.checkpoint import load_model
from dimcollapse.probe import extract_features, load_run_data


def _hidden_activations(model: nn.Module, r: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of each ReLU of the model's expander for representations ``r``."""
    out, h = [], r
    for layer in model.head.net:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            out.append(h)
    return [*out, h]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        model, ckpt = load_model(run)
        data = load_run_data(ckpt, "test", subset=args.images)
        r, _ = extract_features(model, data, space="representation")
        with torch.no_grad():
            *hidden, z = _hidden_activations(model.eval(), r)
        dead = [int((h.abs().amax(dim=0) == 0).sum()) for h in hidden]
        zc = (z - z.mean(0)).double()
        s = torch.linalg.svdvals(zc)
        rank = int((s > 1e-6 * s[0]).sum())
        widths = [h.shape[1] for h in hidden]
        layers = ", ".join(f"{d}/{w} dead" for d, w in zip(dead, widths))
        print(f"{run}: hidden units {layers}; z rank {rank}/{z.shape[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
