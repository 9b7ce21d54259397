"""A checkpoint zoo (issue 16): each layout users hold, saved the way its library saves it, loads
into a torchvision/timm architecture with the features of a reference loaded by hand, and the
notes say what was chosen. lightly + Lightning and timm's own saver are used where installed."""

from __future__ import annotations

import argparse
import copy
import json
import pathlib

import numpy as np
import pytest
import torch
import torchvision
from conftest import assert_usage_error
from torch import nn

from dimcollapse.data.datasets import load_dataset
from dimcollapse.foreign import load_foreign_model
from dimcollapse.probe import extract_features

COMMON = ["--dataset", "digits", "--image-size", "32"]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: lightly's nn.Sequential(*list(resnet.children())[:-1]): index -> torchvision child name.
SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3"}
SEQUENTIAL_NAMES["7"] = "layer4"
#: pytorch_lightning's own use of a torch API it deprecates (not ours to fix).
LIGHTNING_INTERNALS = pytest.mark.filterwarnings("ignore:.*LeafSpec")
#: lightly's DINOProjectionHead builds its last layer with torch's deprecated weight_norm.
LIGHTLY_WEIGHT_NORM = pytest.mark.filterwarnings("ignore:.*weight_norm")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "test", subset=24, seed=0)


def _resnet18(seed: int) -> nn.Module:
    """A ResNet-18 whose weights and BatchNorm statistics are all distinct (seeded)."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net


def _without_fc(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _reference(net: nn.Module, data, size: int = 32, stats=IMAGENET) -> torch.Tensor:
    """Independent reference: grey -> RGB, resize, the model's normalisation, head removed."""
    net = copy.deepcopy(net).eval()
    if hasattr(net, "reset_classifier"):
        net.reset_classifier(0)
    else:
        net.fc = nn.Identity()
    x = data.tensors()[0].float() / 255
    x = x.expand(-1, 3, -1, -1)
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in stats)
    with torch.no_grad():
        return net((x - mean) / std)


def _pixels(data, size: int = 32, stats=IMAGENET) -> torch.Tensor:
    """The fixed inputs: grey -> RGB, resized, normalised with the model's statistics."""
    x = data.tensors()[0].float() / 255
    x = x.expand(-1, 3, -1, -1)
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in stats)
    return (x - mean) / std


def _run(forward, data, size: int = 32, stats=IMAGENET) -> torch.Tensor:
    """The owning module's own forward on the fixed inputs (eval mode, no gradients)."""
    owner = getattr(forward, "__self__", forward)
    if isinstance(owner, nn.Module):
        owner.eval()
    with torch.no_grad():
        return forward(_pixels(data, size, stats)).flatten(1)


def _features(spec, path, data, capsys, **kw):
    fm = load_foreign_model(spec, path, data_mean=data.mean, data_std=data.std, image_size=32, **kw)
    got, _ = extract_features(fm, data)
    return got, capsys.readouterr().err


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding, relative to the features' scale."""
    return a.shape == b.shape and bool((a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-6)


# ---- lightly, the way its documentation trains SimCLR ------------------------------------------


@pytest.fixture(scope="module")
def lightly_checkpoint(tmp_path_factory):
    """lightly's SimCLR example: Sequential-of-children backbone, SimCLRProjectionHead,
    NTXentLoss, trained two steps by a Lightning Trainer and saved with save_checkpoint; and the
    same backbone re-saved under torchvision's names (renamed by hand)."""
    pytest.importorskip("lightly")
    pl = pytest.importorskip("pytorch_lightning")
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    class SimCLR(pl.LightningModule):
        def __init__(self):
            super().__init__()
            resnet = torchvision.models.resnet18()
            self.backbone = nn.Sequential(*list(resnet.children())[:-1])
            self.projection_head = SimCLRProjectionHead(512, 64, 16)
            self.criterion = NTXentLoss()

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

        def training_step(self, batch, batch_index):
            (x0, x1), _ = batch
            return self.criterion(self.forward(x0), self.forward(x1))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.06)

    torch.manual_seed(0)
    views = torch.randn(8, 2, 3, 32, 32)
    pairs = [((v[0], v[1]), 0) for v in views]
    loader = torch.utils.data.DataLoader(pairs, batch_size=4)
    model = SimCLR()
    trainer = pl.Trainer(
        max_steps=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, loader)
    d = tmp_path_factory.mktemp("lightly")
    trainer.save_checkpoint(d / "lightly.ckpt")
    model.cpu().eval()
    renamed = {}
    for key, value in model.backbone.state_dict().items():
        index, _, rest = key.partition(".")
        renamed[f"{SEQUENTIAL_NAMES[index]}.{rest}"] = value
    torch.save(renamed, d / "torchvision.pth")
    reference = torchvision.models.resnet18()
    reference.load_state_dict(renamed, strict=False)  # fc is the only key not in the file
    return d, reference, model


@LIGHTNING_INTERNALS
def test_lightly_simclr_checkpoint_matches_by_structure(lightly_checkpoint, digits, capsys):
    d, reference, model = lightly_checkpoint
    got, err = _features("torchvision:resnet18", d / "lightly.ckpt", digits, capsys)
    assert _close(got, _run(model.backbone, digits))  # lightly's own backbone, flattened
    assert _close(got, _reference(reference, digits))
    assert "names matched by structure" in err and "backbone.0.weight -> conv1.weight" in err


@LIGHTNING_INTERNALS
def test_lightly_checkpoint_has_the_spectrum_of_torchvision_names(lightly_checkpoint, cli):
    d, _, _ = lightly_checkpoint
    code, out, err = cli(
        "spectrum", "--model", "torchvision:resnet18", "--weights", d / "lightly.ckpt",
        "--model", "torchvision:resnet18", "--weights", d / "torchvision.pth",
        "--subset", "64", "--json", *COMMON,
    )  # fmt: skip
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["dim"] == second["dim"] == 512
    assert first["singular_values"] == pytest.approx(second["singular_values"], rel=1e-5)


def _fit(pl, model, views: int = 2, steps: int = 2) -> None:
    """Two training steps of a lightly example's LightningModule on random 32x32 views."""
    torch.manual_seed(0)
    batches = [(tuple(v), 0) for v in torch.randn(8, views, 3, 32, 32)]
    loader = torch.utils.data.DataLoader(batches, batch_size=4)
    trainer = pl.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, loader)
    return trainer


@pytest.fixture(scope="module")
def lightly_twins(tmp_path_factory):
    """lightly's MoCo and DINO examples (lightly-ai/lightly, examples/pytorch_lightning/moco.py
    and dino.py): their modules as the examples build them (lightly's own heads, losses and
    momentum updates), trained two steps by a Lightning Trainer and saved by it."""
    pytest.importorskip("lightly")
    pl = pytest.importorskip("pytorch_lightning")
    from lightly.loss import DINOLoss, NTXentLoss
    from lightly.models.modules import DINOProjectionHead, MoCoProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.utils.scheduler import cosine_schedule

    class MoCo(pl.LightningModule):  # examples/pytorch_lightning/moco.py
        def __init__(self):
            super().__init__()
            resnet = torchvision.models.resnet18()
            self.backbone = nn.Sequential(*list(resnet.children())[:-1])
            self.projection_head = MoCoProjectionHead(512, 512, 128)
            self.backbone_momentum = copy.deepcopy(self.backbone)
            self.projection_head_momentum = copy.deepcopy(self.projection_head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.projection_head_momentum)
            self.criterion = NTXentLoss(memory_bank_size=(4096, 128))

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

        def forward_momentum(self, x):
            key = self.backbone_momentum(x).flatten(start_dim=1)
            return self.projection_head_momentum(key).detach()

        def training_step(self, batch, batch_idx):
            momentum = cosine_schedule(self.current_epoch, 10, 0.996, 1)
            update_momentum(self.backbone, self.backbone_momentum, m=momentum)
            update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
            x_query, x_key = batch[0]
            return self.criterion(self.forward(x_query), self.forward_momentum(x_key))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.06)

    class DINO(pl.LightningModule):  # examples/pytorch_lightning/dino.py
        def __init__(self):
            super().__init__()
            resnet = torchvision.models.resnet18()
            backbone = nn.Sequential(*list(resnet.children())[:-1])
            self.student_backbone = backbone
            self.student_head = DINOProjectionHead(512, 512, 64, 2048, freeze_last_layer=1)
            self.teacher_backbone = copy.deepcopy(backbone)
            self.teacher_head = DINOProjectionHead(512, 512, 64, 2048)
            deactivate_requires_grad(self.teacher_backbone)
            deactivate_requires_grad(self.teacher_head)
            self.criterion = DINOLoss(output_dim=2048, warmup_teacher_temp_epochs=5)

        def forward(self, x):
            return self.student_head(self.student_backbone(x).flatten(start_dim=1))

        def forward_teacher(self, x):
            return self.teacher_head(self.teacher_backbone(x).flatten(start_dim=1))

        def training_step(self, batch, batch_idx):
            momentum = cosine_schedule(self.current_epoch, 10, 0.996, 1)
            update_momentum(self.student_backbone, self.teacher_backbone, m=momentum)
            update_momentum(self.student_head, self.teacher_head, m=momentum)
            views = batch[0]
            teacher_out = [self.forward_teacher(view) for view in views[:2]]
            student_out = [self.forward(view) for view in views]
            return self.criterion(teacher_out, student_out, epoch=self.current_epoch)

        def on_after_backward(self):
            self.student_head.cancel_last_layer_gradients(current_epoch=self.current_epoch)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.001)

    d = tmp_path_factory.mktemp("lightly_twins")
    models = {}
    for name, cls in (("moco", MoCo), ("dino", DINO)):
        torch.manual_seed(1)
        model = cls()
        _fit(pl, model).save_checkpoint(d / f"{name}.ckpt")
        models[name] = model.cpu().eval()
    return d, models


@LIGHTNING_INTERNALS
@LIGHTLY_WEIGHT_NORM
def test_lightly_moco_example_loads_the_query_backbone_or_the_momentum_one(
    lightly_twins, digits, capsys
):
    d, models = lightly_twins
    moco = models["moco"]
    query, key = _run(moco.backbone, digits), _run(moco.backbone_momentum, digits)
    assert not _close(query, key)  # trained: the momentum copy lags behind
    got, err = _features("torchvision:resnet18", d / "moco.ckpt", digits, capsys)
    assert _close(got, query)
    assert "using 'state_dict.backbone'" in err and "lightly's MoCo evaluates the query" in err
    for word in ("momentum", "key", "backbone_momentum"):
        got, err = _features("torchvision:resnet18", d / "moco.ckpt", digits, capsys, select=word)
        assert _close(got, key), word
        assert "using 'state_dict.backbone_momentum'" in err


@LIGHTNING_INTERNALS
@LIGHTLY_WEIGHT_NORM
def test_lightly_dino_example_loads_the_teacher_backbone_or_the_student(
    lightly_twins, digits, capsys
):
    d, models = lightly_twins
    dino = models["dino"]
    teacher, student = _run(dino.teacher_backbone, digits), _run(dino.student_backbone, digits)
    assert not _close(teacher, student)
    got, err = _features("torchvision:resnet18", d / "dino.ckpt", digits, capsys)
    assert _close(got, teacher)
    assert "using 'state_dict.teacher_backbone'" in err and "DINO evaluates the teacher" in err
    got, err = _features("torchvision:resnet18", d / "dino.ckpt", digits, capsys, select="student")
    assert _close(got, student) and "using 'state_dict.student_backbone'" in err


def test_sequential_backbone_with_a_cifar_stem(tmp_path, digits, capsys):
    """lightly's Sequential of children around a CIFAR-stem ResNet: matched by structure only
    once the stem is rebuilt (a 3x3 conv1 and no max-pool)."""
    net = _resnet18(14)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    body = nn.Sequential(*list(net.children())[:-1])
    state = {f"backbone.{n}": v for n, v in body.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "cifar.ckpt")
    got, err = _features("torchvision:resnet18", tmp_path / "cifar.ckpt", digits, capsys)
    assert _close(got, _reference(net, digits))
    assert "CIFAR stem" in err and "names matched by structure" in err


# ---- MoCo v2 / v3, DINO, SwAV, Barlow Twins ---------------------------------------------------


def _moco_v2_encoder(seed: int) -> nn.Module:
    """MoCo v2's encoder (facebookresearch/moco, moco/builder.py: ``base_encoder(num_classes=
    dim)``, with ``mlp`` its fc becomes ``Sequential(Linear(dim_mlp, dim_mlp), ReLU(), fc)``;
    main_lincls.py evaluates encoder_q without fc): its forward, fc removed, is the reference."""
    net = _resnet18(seed)
    net.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))
    return net


def test_moco_v2_loads_the_query_encoder_or_the_key_one(tmp_path, digits, capsys):
    q, k = _moco_v2_encoder(1), _moco_v2_encoder(2)
    state = {f"module.encoder_q.{n}": v for n, v in q.state_dict().items()}
    state |= {f"module.encoder_k.{n}": v for n, v in k.state_dict().items()}
    state |= {"module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1).long()}
    sgd = torch.optim.SGD(q.parameters(), lr=0.03, momentum=0.9)
    ckpt = {"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": sgd.state_dict()}
    torch.save(ckpt, tmp_path / "moco_v2.pth.tar")
    got, err = _features("torchvision:resnet18", tmp_path / "moco_v2.pth.tar", digits, capsys)
    assert _close(got, _reference(q, digits))
    assert "'state_dict.module.encoder_q'" in err and "query encoder" in err
    got, err = _features(
        "torchvision:resnet18", tmp_path / "moco_v2.pth.tar", digits, capsys, select="key"
    )
    assert _close(got, _reference(k, digits)) and "--select key" in err


def _mlp(dims: list[int], last_bn: bool = True) -> nn.Sequential:
    """MoCo v3's _build_mlp (facebookresearch/moco-v3, moco/builder.py): Linear, BN, ReLU ...
    Linear, BN without affine; MoCo_ResNet puts the projector in the encoder's fc."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=False))
        if not last:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU()]
        elif last_bn:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=False))
    return nn.Sequential(*layers)


def test_moco_v3_loads_the_base_encoder_or_the_momentum_one(tmp_path, digits, capsys):
    base, momentum = _resnet18(3), _resnet18(4)
    base.fc, momentum.fc = _mlp([512, 64, 32]), _mlp([512, 64, 32])
    predictor = _mlp([32, 64, 32], last_bn=False)
    state = {f"module.base_encoder.{n}": v for n, v in base.state_dict().items()}
    state |= {f"module.momentum_encoder.{n}": v for n, v in momentum.state_dict().items()}
    state |= {f"module.predictor.{n}": v for n, v in predictor.state_dict().items()}
    scaler = torch.amp.GradScaler("cpu")
    ckpt = {"epoch": 100, "arch": "resnet18", "state_dict": state, "scaler": scaler.state_dict()}
    torch.save(ckpt, tmp_path / "moco_v3.pth.tar")
    got, err = _features("torchvision:resnet18", tmp_path / "moco_v3.pth.tar", digits, capsys)
    assert _close(got, _reference(base, digits)) and "MoCo v3 evaluates the base" in err
    got, _ = _features(
        "torchvision:resnet18", tmp_path / "moco_v3.pth.tar", digits, capsys, select="momentum"
    )
    assert _close(got, _reference(momentum, digits))


@pytest.fixture
def dino_checkpoint(tmp_path):
    """DINO's checkpoint.pth (facebookresearch/dino, main_dino.py and utils.py's
    MultiCropWrapper: backbone with fc = Identity, vision_transformer.py's DINOHead): student
    (DDP: module.) and teacher state dicts, optimizer, args, the loss's center."""
    student, teacher = _resnet18(5), _resnet18(6)
    student.fc = teacher.fc = nn.Identity()

    def wrapper(backbone, prefix):
        state = {f"{prefix}backbone.{n}": v for n, v in backbone.state_dict().items()}
        state[f"{prefix}head.mlp.0.weight"] = torch.randn(64, 512)
        state[f"{prefix}head.last_layer.weight_g"] = torch.ones(256, 1)
        state[f"{prefix}head.last_layer.weight_v"] = torch.randn(256, 64)
        return state

    ckpt = {
        "student": wrapper(student, "module."),
        "teacher": wrapper(teacher, ""),
        "optimizer": torch.optim.SGD(student.parameters(), lr=0.1).state_dict(),
        "epoch": 100,
        "args": argparse.Namespace(arch="resnet18", out_dim=256, momentum_teacher=0.996),
        "dino_loss": {"center": torch.zeros(1, 256)},
    }
    torch.save(ckpt, tmp_path / "checkpoint.pth")
    return tmp_path / "checkpoint.pth", student, teacher


def test_dino_loads_the_teacher_by_default(dino_checkpoint, digits, capsys):
    path, _student, teacher = dino_checkpoint
    got, err = _features("torchvision:resnet18", path, digits, capsys)
    assert _close(got, _reference(teacher, digits))
    assert "using 'teacher.backbone'" in err and "DINO evaluates the teacher" in err


def test_dino_student_through_the_cli(dino_checkpoint, digits, cli, tmp_path):
    path, student, _teacher = dino_checkpoint
    out = tmp_path / "student.npy"
    code, _, err = cli(
        "embed", "--model", "torchvision:resnet18", "--weights", path, "--select", "student",
        "--split", "test", "--subset", "24", "--out", out, *COMMON,
    )  # fmt: skip
    assert code == 0, err
    assert np.allclose(np.load(out), _reference(student, digits).numpy(), atol=1e-4)
    assert "using 'student.module.backbone'" in err


def test_swav_and_barlow_twins_module_prefix(tmp_path, digits, capsys):
    """SwAV (facebookresearch/swav, src/resnet50.py: projection_head and prototypes beside the
    trunk, saved under DDP's module.) and Barlow Twins (facebookresearch/barlowtwins, main.py:
    backbone with fc = Identity, projector, bn without affine; the checkpoint's "model")."""
    swav, barlow = _resnet18(7), _resnet18(8)
    state = {f"module.{n}": v for n, v in _without_fc(swav.state_dict()).items()}
    state["module.projection_head.0.weight"] = torch.randn(64, 512)
    state["module.prototypes.weight"] = torch.randn(30, 16)
    torch.save({"epoch": 10, "state_dict": state, "amp": {}}, tmp_path / "swav.pth")
    got, err = _features("torchvision:resnet18", tmp_path / "swav.pth", digits, capsys)
    assert _close(got, _reference(swav, digits)) and "not in the file" not in err
    state = {f"module.backbone.{n}": v for n, v in _without_fc(barlow.state_dict()).items()}
    state["module.projector.0.weight"] = torch.randn(64, 512)
    bn = nn.BatchNorm1d(64, affine=False).state_dict()
    state |= {f"module.bn.{n}": v for n, v in bn.items()}
    torch.save({"epoch": 10, "model": state, "optimizer": {}}, tmp_path / "barlow.pth")
    got, _ = _features("torchvision:resnet18", tmp_path / "barlow.pth", digits, capsys)
    assert _close(got, _reference(barlow, digits))


class _SoloBYOL(nn.Module):
    """solo-learn's BYOL on CIFAR, its module construction transcribed from vturrisi/solo-learn
    solo/methods/base.py (BaseMethod, BaseMomentumMethod: a torchvision resnet18, fc removed;
    for cifar10/100 ``conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2,
    bias=False)`` and ``maxpool = nn.Identity()``; the online ``classifier``; the
    ``momentum_backbone`` built the same way and initialised as a copy) and
    solo/methods/byol.py (projector, momentum_projector, predictor)."""

    def __init__(self, seed: int, num_classes: int = 10) -> None:
        super().__init__()
        self.backbone = _resnet18(seed)
        self.backbone.fc = nn.Identity()
        self.backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        self.backbone.maxpool = nn.Identity()
        self.classifier = nn.Linear(512, num_classes)
        self.momentum_backbone = _resnet18(seed + 100)
        self.momentum_backbone.fc = nn.Identity()
        self.momentum_backbone.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=2, bias=False)
        self.momentum_backbone.maxpool = nn.Identity()
        self.momentum_classifier = nn.Linear(512, num_classes)

        def projector() -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(512, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32)
            )

        self.projector, self.momentum_projector = projector(), projector()
        self.predictor = nn.Sequential(
            nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32)
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """BaseMethod.forward: the backbone's features and the online classifier's logits."""
        feats = self.backbone(x)
        return {"logits": self.classifier(feats.detach()), "feats": feats}


@pytest.fixture(scope="module")
def solo_checkpoint(tmp_path_factory):
    """A solo-learn BYOL CIFAR checkpoint as its Checkpointer writes it (Lightning's
    trainer.save_checkpoint: state_dict beside epoch, global_step, loops, optimizer_states).
    The momentum backbone differs from the online one, as after training."""
    module = _SoloBYOL(12).eval()
    sgd = torch.optim.SGD(module.parameters(), lr=0.1)
    ckpt = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.2.0",
        "state_dict": module.state_dict(),
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}},
        "callbacks": {},
        "optimizer_states": [sgd.state_dict()],
        "lr_schedulers": [],
    }
    path = tmp_path_factory.mktemp("solo") / "byol-cifar10-last.ckpt"
    torch.save(ckpt, path)
    return path, module


def test_solo_learn_cifar_checkpoint_has_the_features_of_its_own_module(
    solo_checkpoint, digits, capsys
):
    """solo-learn pads its 3x3 stem by 2, which the weights cannot show: the layout is
    recognised and the features are those of solo-learn's own forward (BaseMethod.forward's
    "feats"), not of a stem padded by 1."""
    path, module = solo_checkpoint
    got, err = _features("torchvision:resnet18", path, digits, capsys)
    assert _close(got, _run(lambda x: module(x)["feats"], digits))
    assert "CIFAR stem" in err and "padding 2" in err and "solo-learn" in err
    assert "using 'state_dict.backbone'" in err
    got, err = _features("torchvision:resnet18", path, digits, capsys, select="momentum")
    assert _close(got, _run(module.momentum_backbone, digits)) and "padding 2" in err


def _cifar_resnet18(seed: int, padding: int) -> nn.Module:
    """The common small-image ResNet-18: torchvision's with a 3x3 stride-1 conv1, no max-pool."""
    net = _resnet18(seed)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=padding, bias=False)
    net.maxpool = nn.Identity()
    return net


def test_an_unknown_cifar_stem_is_padded_by_1_unless_told(tmp_path, digits, capsys, cli):
    """A CIFAR stem whose owner the file does not show: padding 1, the common choice, said in a
    note; --stem-padding gives another (the weights are the same either way)."""
    net = _cifar_resnet18(15, padding=1)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "c.pth")
    got, err = _features("torchvision:resnet18", tmp_path / "c.pth", digits, capsys)
    assert _close(got, _reference(net, digits))
    assert "padding 1 (assumed" in err and "--stem-padding" in err
    padded = _cifar_resnet18(15, padding=2)  # the same tensors, padded by 2
    got, err = _features("torchvision:resnet18", tmp_path / "c.pth", digits, capsys, stem_padding=2)
    assert _close(got, _reference(padded, digits)) and "padding 2 (--stem-padding 2)" in err
    assert not _close(got, _reference(net, digits))
    out = tmp_path / "e.npy"
    code, _, err = cli(
        "embed", "--model", "torchvision:resnet18", "--weights", tmp_path / "c.pth",
        "--stem-padding", "2", "--split", "test", "--subset", "24", "--out", out, *COMMON,
    )  # fmt: skip
    assert code == 0, err
    assert np.allclose(np.load(out), _reference(padded, digits).numpy(), atol=1e-4)


def test_a_solo_learn_checkpoint_padded_otherwise_when_told(solo_checkpoint, digits, capsys):
    path, module = solo_checkpoint
    got, err = _features("torchvision:resnet18", path, digits, capsys, stem_padding=1)
    ref = copy.deepcopy(module.backbone)
    ref.conv1.padding = (1, 1)
    assert _close(got, _run(ref, digits))
    assert "--stem-padding 1; the layout is solo-learn's, which pads by 2" in err


def test_stem_padding_where_it_does_not_apply_is_refused(tmp_path, cli):
    torch.save(_resnet18(16).state_dict(), tmp_path / "imagenet.pth")
    torch.save(_cifar_resnet18(16, 1).state_dict(), tmp_path / "cifar.pth")
    run = ("spectrum", "--model", "torchvision:resnet18", "--weights")
    assert_usage_error(
        cli(*run, tmp_path / "imagenet.pth", "--stem-padding", "2", *COMMON),
        "--stem-padding 2",
        "no CIFAR stem",
    )
    assert_usage_error(
        cli(*run, tmp_path / "cifar.pth", "--stem-padding", "3", *COMMON), "0, 1 or 2"
    )
    assert_usage_error(
        cli("spectrum", "--model", "hf:somewhere", "--stem-padding", "2", *COMMON),
        "--stem-padding 2",
        "only hf: models",
    )


def test_timm_checkpoint_with_ema_loads_the_ema(tmp_path, digits, capsys):
    timm = pytest.importorskip("timm")
    from timm.utils import CheckpointSaver, ModelEmaV3

    torch.manual_seed(9)
    model = timm.create_model("resnet18", pretrained=False)
    ema = ModelEmaV3(model, decay=0.5)
    with torch.no_grad():  # the weights move on; the EMA follows halfway
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ema.update(model)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    saver = CheckpointSaver(model, sgd, model_ema=ema, checkpoint_dir=str(tmp_path))
    saver.save_checkpoint(epoch=0, metric=0.5)
    path = tmp_path / "last.pth.tar"
    reference = timm.create_model("resnet18", pretrained=False)
    timm.models.load_checkpoint(reference, str(path), use_ema=True)  # timm's own reader
    stats = (reference.pretrained_cfg["mean"], reference.pretrained_cfg["std"])
    got, err = _features("timm:resnet18", path, digits, capsys)
    assert _close(got, _reference(reference, digits, stats=stats))
    assert "using 'state_dict_ema'" in err and "EMA" in err
    got, _ = _features("timm:resnet18", path, digits, capsys, select="state_dict")
    assert _close(got, _reference(model, digits, stats=stats))


# ---- Lightning hyper-parameters: plain data beside the tensors, loaded without running code --


class _Schedule:
    """A class of the training code, pickled into hyper_parameters: never unpickled here."""


def _lightning_file(path, net: nn.Module, hyper_parameters: dict, **extra) -> None:
    """A checkpoint in Lightning's layout (trainer.save_checkpoint's keys), saved by torch.save."""
    state = {f"backbone.{k}": v for k, v in _without_fc(net.state_dict()).items()}
    ckpt = {"epoch": 1, "global_step": 10, "pytorch-lightning_version": "2.6.0"}
    ckpt |= {"state_dict": state, "hyper_parameters": hyper_parameters, **extra}
    torch.save(ckpt, path)


def test_hyper_parameters_with_paths_and_namespaces_load(tmp_path, digits, capsys):
    net = _resnet18(17)
    hp = {
        "data_dir": pathlib.Path("/data/cifar10"),
        "out": pathlib.PurePosixPath("runs/x"),
        "windows_dir": pathlib.PureWindowsPath(r"C:\\data"),
        "args": argparse.Namespace(lr=0.1, arch="resnet18", crops=[2, 6], root=pathlib.Path(".")),
    }
    _lightning_file(tmp_path / "hp.ckpt", net, hp)
    got, err = _features("torchvision:resnet18", tmp_path / "hp.ckpt", digits, capsys)
    assert _close(got, _reference(net, digits))


def test_hyper_parameters_holding_an_omegaconf_config_load(tmp_path, digits, capsys):
    omegaconf = pytest.importorskip("omegaconf")
    net = _resnet18(18)
    cfg = omegaconf.OmegaConf.create(
        {"method": "simclr", "data": {"dataset": "cifar10", "root": "data"}, "crops": [2, 0.5],
         "optimizer": {"lr": 0.4, "nesterov": True, "extra": None}}
    )  # fmt: skip
    hp = {"cfg": cfg, "augment": omegaconf.OmegaConf.create([{"crop": 32}, "flip"])}
    # Lightning saves a config-typed hparams under hyper_parameters and its type beside it
    _lightning_file(tmp_path / "cfg.ckpt", net, hp, hparams_type=omegaconf.DictConfig)
    got, _ = _features("torchvision:resnet18", tmp_path / "cfg.ckpt", digits, capsys)
    assert _close(got, _reference(net, digits))


@LIGHTNING_INTERNALS
def test_lightning_save_hyperparameters_checkpoint_loads(tmp_path, digits, capsys):
    """A real Trainer checkpoint of a module that called save_hyperparameters() on a path and
    (where omegaconf is installed) a Hydra-style config."""
    pl = pytest.importorskip("pytorch_lightning")
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.create({"data": {"dataset": "cifar10"}, "lr": 0.1})
    except ImportError:
        cfg = argparse.Namespace(data={"dataset": "cifar10"}, lr=0.1)

    class Module(pl.LightningModule):
        def __init__(self, cfg, data_dir: pathlib.Path):
            super().__init__()
            self.save_hyperparameters()
            self.backbone = _resnet18(19)
            self.backbone.fc = nn.Identity()

        def training_step(self, batch, batch_index):
            (x0, x1), _ = batch
            return (self.backbone(x0) - self.backbone(x1)).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    module = Module(cfg, pathlib.Path("/data/cifar10"))
    _fit(pl, module, steps=1).save_checkpoint(tmp_path / "hp.ckpt")
    saved = torch.load(tmp_path / "hp.ckpt", weights_only=False)  # the test's own file
    assert isinstance(saved["hyper_parameters"]["data_dir"], pathlib.Path)
    assert type(saved["hyper_parameters"]["cfg"]).__name__ in ("DictConfig", "Namespace")
    got, _ = _features("torchvision:resnet18", tmp_path / "hp.ckpt", digits, capsys)
    assert _close(got, _run(module.cpu().backbone, digits))


def test_other_pickled_objects_are_refused_with_torchs_detail(tmp_path, cli):
    _lightning_file(tmp_path / "obj.ckpt", _resnet18(20), {"schedule": _Schedule()})
    result = cli(
        "spectrum", "--model", "torchvision:resnet18", "--weights", tmp_path / "obj.ckpt",
        *COMMON,
    )  # fmt: skip
    assert_usage_error(
        result, "unpickling can run code", "Unsupported global", "_Schedule", "safe_globals"
    )


# ---- refusals ---------------------------------------------------------------------------------


def test_an_ambiguous_file_is_one_error_line(tmp_path, cli, digits, capsys):
    a, b = _resnet18(10), _resnet18(11)
    state = {f"a.{n}": v for n, v in a.state_dict().items()}
    state |= {f"b.{n}": v for n, v in b.state_dict().items()}
    torch.save(state, tmp_path / "two.pth")
    run = ("spectrum", "--model", "torchvision:resnet18", "--weights", tmp_path / "two.pth")
    assert_usage_error(cli(*run, *COMMON), "2 sets of tensors", "--prefix", "'a', 'b'")
    assert_usage_error(cli(*run, "--select", "c", *COMMON), "--select 'c'")
    got, _ = _features("torchvision:resnet18", tmp_path / "two.pth", digits, capsys, prefix="b.")
    assert _close(got, _reference(b, digits))
    # two Sequential-of-children backbones: ambiguous by structure too
    seq = {}
    for name, net in (("online", a), ("other", b)):
        body = nn.Sequential(*list(net.children())[:-1])
        seq |= {f"{name}_net.{n}": v for n, v in body.state_dict().items()}
    torch.save(seq, tmp_path / "two_seq.pth")
    code, out, err = cli(
        "spectrum", "--model", "torchvision:resnet18", "--weights", tmp_path / "two_seq.pth",
        *COMMON,
    )  # fmt: skip
    assert_usage_error((code, out, err), "'online_net', 'other_net'", "--prefix")


def test_structure_refuses_another_architecture(tmp_path, cli):
    body = nn.Sequential(*list(torchvision.models.resnet34().children())[:-1])
    torch.save({"backbone": body.state_dict()}, tmp_path / "r34.pth")
    result = cli(
        "spectrum", "--model", "torchvision:resnet18", "--weights", tmp_path / "r34.pth",
        *COMMON,
    )  # fmt: skip
    assert_usage_error(result, "another architecture", "--prefix")
