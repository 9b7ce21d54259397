"""dimcollapse.monitor (any loop), its forward hooks, the Lightning callback, and the merge of
several ranks' rows under torch.distributed."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from torch import nn
from two_ranks import free_port

from dimcollapse.errors import UsageError
from dimcollapse.monitor import CollapseMonitor, as_rows, flat_metrics, watch
from dimcollapse.spectrum import summarize


def _data(n: int = 600, d: int = 12, rank: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, rank, generator=g) @ torch.randn(rank, d, generator=g) + 3.0


def test_plain_loop_matches_one_shot_summary_and_numpy():
    x = _data()
    mon = CollapseMonitor()
    for chunk in x.split(64):
        mon.update("z", chunk)
    got = mon.compute()["z"]
    ref = summarize(x.double()).to_dict()
    assert got["collapsed_dims"] == ref["collapsed_dims"] == 4  # rank 8 of 12
    # collapsed directions sit at sqrt(float64 rounding) of sigma_1: RankMe agrees to ~1e-7
    assert got["rankme"] == pytest.approx(ref["rankme"], rel=1e-6)
    cov = np.cov(x.double().numpy().T, bias=True)
    assert np.allclose(got["singular_values"], np.linalg.eigvalsh(cov)[::-1], atol=1e-9)
    assert set(flat_metrics({"z": got})) == {
        "collapse/z/rankme",
        "collapse/z/collapsed_dims",
        "collapse/z/dead_dims",
        "collapse/z/cliff_decades",
        "collapse/z/entropy_rank",
        "collapse/z/dims_90",
    }
    mon.reset()
    assert mon.names == [] and mon.compute() == {}


def test_shapes_max_rows_and_bad_input():
    assert as_rows(torch.ones(4, 3, 5, 5)).shape == (4, 3)  # pooled map
    assert as_rows(torch.ones(4, 7, 6)).shape == (4, 6)  # tokens averaged
    mon = CollapseMonitor(max_rows=100)
    for chunk in _data().split(64):
        mon.update("r", chunk)
    assert mon.rows("r") == 100
    with pytest.raises(UsageError):
        CollapseMonitor(rel_tol=2.0)
    with pytest.raises(UsageError):
        mon.update("r", "not a tensor")  # type: ignore[arg-type]


def test_watch_hooks_need_no_training_code_changes():
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    x = _data()
    with watch(model, {"h": "1", "z": "2"}) as mon:
        for chunk in x.split(100):
            model(chunk)
    out = mon.compute()
    assert out["z"]["dim"] == 4 and out["h"]["dim"] == 16 and out["z"]["n"] == 600
    model(x)  # hooks removed: nothing more is recorded
    assert mon.rows("z") == 600
    with pytest.raises(UsageError, match="no module"):
        watch(model, {"z": "projector"})


def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x = _data()
        mon = CollapseMonitor()
        mine = x[rank::world]  # each rank sees its own rows
        for chunk in mine.split(50):
            mon.update("z", chunk)
        if rank == 0:
            mon.update("only0", x[:30, :5])  # a name only one rank has
        result = mon.compute()
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_merge_to_the_single_process_result(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "res")
    mp.spawn(_rank_main, args=(2, free_port(), out), nprocs=2, join=True)
    r0, r1 = torch.load(f"{out}.0", weights_only=False), torch.load(f"{out}.1", weights_only=False)
    assert r0 == r1  # every rank sees the same numbers
    single = CollapseMonitor()
    single.update("z", _data())  # one process, every row
    ref = single.compute()["z"]
    assert r0["z"]["n"] == 600 and r0["z"]["collapsed_dims"] == ref["collapsed_dims"]
    assert np.allclose(r0["z"]["singular_values"], ref["singular_values"], rtol=1e-9, atol=1e-12)
    assert r0["z"]["rankme"] == pytest.approx(ref["rankme"], rel=1e-6)
    assert r0["only0"]["n"] == 30


class _SSL(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(12, 16), nn.ReLU())
        self.projector = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


def test_lightning_callback_logs_collapse_in_a_real_trainer(tmp_path):
    lightning = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    from dimcollapse.lightning import CollapseCallback

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _SSL()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _idx):
            (x,) = batch
            z = self(x)
            return (z - x[:, :8]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    data = TensorDataset(_data(256))
    train = DataLoader(data, batch_size=32)
    held_out = DataLoader(TensorDataset(_data(200, seed=1)), batch_size=50)
    on_outputs = CollapseCallback(
        {"r": "net.backbone", "z": "net.projector"}, spectra_path=tmp_path / "spectra.jsonl"
    )
    trainer = lightning.Trainer(
        max_epochs=2,
        callbacks=[on_outputs],
        accelerator="cpu",
        devices=1,
        logger=lightning.pytorch.loggers.CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Module(), train)
    logged = trainer.logged_metrics
    for key in ("collapse/z/rankme", "collapse/z/collapsed_dims", "collapse/r/dims_90"):
        assert key in logged, sorted(logged)
    assert on_outputs.last["z"]["n"] == 256 and on_outputs.last["z"]["dim"] == 8
    lines = (tmp_path / "spectra.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"z"' in lines[0]
    # a fixed held-out set instead of the training outputs
    held = CollapseCallback({"z": "net.projector"}, loader=held_out)
    trainer = lightning.Trainer(
        max_epochs=1,
        callbacks=[held],
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Module(), train)
    assert held.last["z"]["n"] == 200
    assert "collapse/z/entropy_rank" in trainer.logged_metrics


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("gloo spawn test is Linux-only here", allow_module_level=True)
