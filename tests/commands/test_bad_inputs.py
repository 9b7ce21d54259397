"""A corpus of bad inputs to every command: each is refused with exit status 2 and one
``error:`` line that says what is really wrong, with no traceback and no warning beside it, and
nothing is written: no new file, no changed file, nothing the user had lost or overwritten.

Each case runs in its own tmp_path (the working directory), where a factory per input kind
first writes the bad file; the commands that need a trained run or weights share one tiny run
and one ResNet-18 state_dict per module. Each input should be refused before training starts."""

from __future__ import annotations

import errno
import pickle
import shutil
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_usage_error

from dimcollapse.cli import main

Factory = Callable[[Path], None]

# -- one factory per kind of bad input: each writes it at the path it is given ----------------


def text(content: str = "these are my notes\n") -> Factory:
    return lambda path: path.write_text(content)


def empty_file() -> Factory:
    return lambda path: path.write_bytes(b"")


def directory() -> Factory:
    return lambda path: path.mkdir()


def npy(array: np.ndarray) -> Factory:
    return lambda path: np.save(path, array)


def embeddings(rows: int = 50, dim: int = 8, poison: float | None = None) -> Factory:
    """A float64 (rows, dim) .npy, one entry replaced by ``poison`` (NaN, inf) when given."""
    z = np.random.default_rng(0).standard_normal((rows, dim))
    if poison is not None:
        z[3, 2] = poison
    return npy(z)


def truncated_npy() -> Factory:
    def write(path: Path) -> None:
        np.save(path, np.ones((50, 8), dtype=np.float32))
        path.write_bytes(path.read_bytes()[:300])  # header intact, data cut short

    return write


def npz(**arrays: np.ndarray) -> Factory:
    """An .npz of these arrays (none: an archive without arrays). ``np.savez`` appends .npz,
    so it writes to an open file to keep the name it is given."""

    def write(path: Path) -> None:
        with path.open("wb") as fh:
            np.savez(fh, **arrays)

    return write


def image_npz(images: int = 100, labels: int = 100) -> Factory:
    """A dataset .npz as ``--dataset npz`` reads it: uint8 images and integer labels."""
    rng = np.random.default_rng(0)
    return npz(
        images=rng.integers(0, 255, (images, 8, 8), dtype=np.uint8),
        labels=rng.integers(0, 3, labels),
    )


def torch_file(obj: object) -> Factory:
    return lambda path: torch.save(obj, path)


def pickled_run() -> Factory:
    """A run directory whose checkpoints/last.pt is a plain pickle, not a checkpoint."""

    def write(path: Path) -> None:
        (path / "checkpoints").mkdir(parents=True)
        with (path / "checkpoints" / "last.pt").open("wb") as fh:
            pickle.dump({"epoch": 3, "weights": [1.0, 2.0]}, fh)

    return write


#: The shared tiny run, for the factories that copy and edit it (set by its fixture).
SHARED: dict[str, Path] = {}


def _edited(payload_path: Path, target: Path, edit: Callable[[dict], None]) -> None:
    payload = torch.load(payload_path, map_location="cpu", weights_only=True)
    edit(payload)
    torch.save(payload, target)


def edited_checkpoint(edit: Callable[[dict], None]) -> Factory:
    """The shared run's final checkpoint, as a file, passed through ``edit`` (in place)."""
    return lambda path: _edited(SHARED["run"] / "checkpoints" / "final.pt", path, edit)


def edited_run(edit: Callable[[dict], None]) -> Factory:
    """A copy of the shared run whose checkpoints are passed through ``edit``."""

    def write(path: Path) -> None:
        shutil.copytree(SHARED["run"], path)
        for ckpt in (path / "checkpoints").glob("*.pt"):
            _edited(ckpt, ckpt, edit)

    return write


def first_tensor_wrong_shape(payload: dict) -> None:
    """Weights edited by hand: the first tensor of the model replaced by a (3, 3) one."""
    payload["model"][next(iter(payload["model"]))] = torch.zeros(3, 3)


def spec_of_another_width(payload: dict) -> None:
    """A model_spec that says width 0.25 beside weights of width 0.125."""
    payload["model_spec"]["width"] = 0.25


def tensor_removed(payload: dict) -> None:
    payload["model"].pop(next(iter(payload["model"])))


def spec_with_unknown_field(payload: dict) -> None:
    payload["model_spec"]["colour"] = "red"


def garbage_spec(payload: dict) -> None:
    payload["model_spec"] = "garbage"


def spec_of_another_seed(payload: dict) -> None:
    """A model_spec whose seed is not the run's: its tensors still fit the model."""
    payload["model_spec"]["seed"] = 7


def config_with_unknown_key(payload: dict) -> None:
    payload["config"]["colour"] = "red"


def config_with_wrong_type(payload: dict) -> None:
    payload["config"]["epochs"] = "many"


def run_with_config_yaml(**settings: object) -> Factory:
    """A copy of the shared run whose config.yaml's ``config`` mapping has ``settings`` too."""

    def write(path: Path) -> None:
        import yaml

        shutil.copytree(SHARED["run"], path)
        document = yaml.safe_load((path / "config.yaml").read_text())
        document["config"].update(settings)
        (path / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    return write


#: Locks held by this test process for the cases of outputs that "another process" is writing
#: (flock locks taken through separate opens conflict as between processes); released at the
#: module's end.
HELD: list[int] = []


def being_written(make: Factory | None = None) -> Factory:
    """A folder (empty, or as ``make`` writes it) whose lock another writer holds, as
    :func:`dimcollapse.outlock.folder_lock` takes it."""

    def write(path: Path) -> None:
        import fcntl
        import os

        make(path) if make is not None else path.mkdir()
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        HELD.append(fd)

    return write


def lock_file_held() -> Factory:
    """The lock file ``.NAME.lock`` of an output file (:func:`dimcollapse.outlock.file_lock`),
    held by another writer."""

    def write(path: Path) -> None:
        import fcntl
        import os

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        HELD.append(fd)

    return write


def image_folder_with_corrupt_jpeg(path: Path) -> None:
    """An ImageNet-layout folder (train/ and val/, two classes of 8x8 PNGs) with one file
    named .jpg that holds no image."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = path / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (path / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


Patch = Callable[[pytest.MonkeyPatch], None]


def disk_full_in(target: str, attribute: str, exc: BaseException) -> Patch:
    """``target.attribute`` raises ``exc``, as a writer does on a full disk."""

    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        def fail(*_args: object, **_kwargs: object) -> None:
            raise exc

        monkeypatch.setattr(f"{target}.{attribute}", fail)

    return apply


def no_space(filename: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", filename)


# -- the corpus --------------------------------------------------------------------------------


def case(
    case_id: str,
    argv: str,
    *fragments: str,
    files: dict[str, Factory] | None = None,
    absent: tuple[str, ...] = (),
    patch: Patch | None = None,
):
    """``argv``: the command line, split on spaces; {run} and {weights} name the shared tiny
    run and ResNet-18 weights, other paths are relative to the case's tmp_path. ``fragments``
    must appear in the error line, ``absent`` must not (a wrong diagnosis, advice to use an
    option the command does not have, a leaked internal message). ``patch``: what the case
    changes in the machine's behaviour (a full disk), applied with pytest's monkeypatch after
    the files are written."""
    return pytest.param(argv, files or {}, fragments, absent, patch, id=case_id)


NOT_PICKLED = ("pickled",)  # a file that is no pickle at all must not be called one
FOREIGN = "--model torchvision:resnet18 --weights {weights}"

SPECTRUM = [
    case("spectrum-text-named-npy", "spectrum emb.npy", "emb.npy", "not a .npy file",
         files={"emb.npy": text()}),
    case("spectrum-truncated-npy", "spectrum emb.npy", "emb.npy", "truncated",
         files={"emb.npy": truncated_npy()}),
    case("spectrum-empty-file", "spectrum emb.npy", "emb.npy", "empty",
         files={"emb.npy": empty_file()}),
    case("spectrum-npz-without-arrays", "spectrum emb.npz", "emb.npz", "holds no arrays",
         files={"emb.npz": npz()}),
    case("spectrum-nan-embeddings", "spectrum emb.npy", "emb.npy", "NaN",
         files={"emb.npy": embeddings(poison=np.nan)}),
    case("spectrum-inf-embeddings", "spectrum emb.npy", "emb.npy", "infinite",
         files={"emb.npy": embeddings(poison=np.inf)}),
    case("spectrum-1d-array", "spectrum emb.npy", "must be 2-D", "(50,)",
         files={"emb.npy": npy(np.ones(50))}),
    case("spectrum-3d-array", "spectrum emb.npy", "must be 2-D", "(5, 4, 3)",
         files={"emb.npy": npy(np.ones((5, 4, 3)))}),
    case("spectrum-string-array", "spectrum emb.npy", "real numbers",
         files={"emb.npy": npy(np.array(["a", "b"]))}),
    case("spectrum-one-row", "spectrum emb.npy", "at least 2 rows",
         files={"emb.npy": embeddings(rows=1)}),
    case("spectrum-no-columns", "spectrum emb.npy", "no columns",
         files={"emb.npy": npy(np.zeros((5, 0)))}),
    case("spectrum-npz-several-arrays-no-key", "spectrum emb.npz", "--key", "a, b",
         files={"emb.npz": npz(a=np.ones((5, 3)), b=np.ones((5, 3)))}),
    case("spectrum-unknown-key", "spectrum emb.npz --key z", "no array named 'z'",
         files={"emb.npz": npz(a=np.ones((5, 3)))}),
    case("spectrum-text-named-pt", "spectrum emb.pt", "emb.pt", "not a PyTorch file",
         files={"emb.pt": text("not a pytorch file at all\n")}, absent=NOT_PICKLED),
    case("spectrum-junk-safetensors", "spectrum emb.safetensors", "not a readable .safetensors",
         files={"emb.safetensors": text("junk")}),
    case("spectrum-missing-file", "spectrum missing.npy", "missing.npy", "no such file"),
    case("spectrum-nothing-given", "spectrum", "--model"),
    case("spectrum-rel-tol-negative", "spectrum emb.npy --rel-tol -1", "--rel-tol", "-1",
         files={"emb.npy": embeddings()}),
    case("spectrum-chunk-rows-malformed", "spectrum emb.npy --chunk-rows 10x", "invalid int",
         "'10x'", files={"emb.npy": embeddings()}),
    case("spectrum-precision-unknown", "spectrum emb.npy --precision float16", "invalid choice",
         "'float16'", files={"emb.npy": embeddings()}),
    case("spectrum-device-unknown", "spectrum emb.npy --device tpu", "--device", "tpu",
         files={"emb.npy": embeddings()}),
    case("spectrum-plot-exists", "spectrum emb.npy --plot plot.png", "plot.png", "--force",
         files={"emb.npy": embeddings(), "plot.png": text("my figure\n")}),
    case("spectrum-plot-wrong-extension", "spectrum emb.npy --plot plot.txt", ".png",
         files={"emb.npy": embeddings()}),
    case("spectrum-run-with-pickled-last-pt", "spectrum run", "last.pt",
         "not a dimcollapse checkpoint", files={"run": pickled_run()}),
    case("spectrum-run-dir-without-checkpoints", "spectrum run", "holds no checkpoints",
         files={"run": directory()}),
    case("spectrum-run-subset-one", "spectrum {run} --subset 1", "--subset", "at least 2"),
    case("spectrum-run-subset-larger-than-split", "spectrum {run} --subset 100000",
         "subset", "the size of digits"),
    case("spectrum-split-unknown", "spectrum {run} --split val", "invalid choice", "'val'"),
]  # fmt: skip

EMBED = [
    case("embed-out-exists", "embed {run} --split test --out mine.npy", "mine.npy", "--force",
         files={"mine.npy": embeddings()}),
    case("embed-out-wrong-extension", "embed {run} --split test --out emb.csv", ".npy",
         ".safetensors"),
    case("embed-out-is-directory", "embed {run} --split test --out emb.npy", "is a directory",
         files={"emb.npy": directory()}),
    case("embed-split-missing", "embed {run} --out emb.npy", "required", "--split"),
    case("embed-subset-larger-than-split", "embed {run} --split test --out e.npy --subset 100000",
         "subset", "the size of digits"),
    case("embed-batch-size-zero", "embed {run} --split test --out e.npy --batch-size 0",
         "--batch-size"),
    case("embed-missing-run", "embed nowhere --split test --out emb.npy", "nowhere",
         "no such run directory"),
    case("embed-dict-of-tensors-as-checkpoint", "embed ckpt.pt --split test --out emb.npy",
         "not a dimcollapse checkpoint", files={"ckpt.pt": torch_file({"x": torch.ones(3)})}),
    case("embed-npy-as-checkpoint", "embed emb.npy --split test --out out.npy",
         "not a dimcollapse checkpoint", files={"emb.npy": embeddings()}, absent=NOT_PICKLED),
    case("embed-model-without-weights",
         "embed --model torchvision:resnet18 --dataset digits --split test --out emb.npy",
         "--weights"),
    case("embed-model-family-unknown",
         "embed --model keras:resnet18 --weights {weights} --split test --out emb.npy",
         "FAMILY:NAME"),
    case("embed-weights-missing",
         "embed --model torchvision:resnet18 --weights nowhere.pth --dataset digits --split test "
         "--out emb.npy", "nowhere.pth", "no such"),
    case("embed-npy-as-weights",
         "embed --model torchvision:resnet18 --weights emb.npy --dataset digits --split test "
         "--out out.npy", "emb.npy", "not a", files={"emb.npy": embeddings()},
         absent=NOT_PICKLED),
    case("embed-dataset-unknown", f"embed {FOREIGN} --dataset imagenet --split test --out e.npy",
         "unknown dataset", "imagenet"),
    case("embed-data-root-missing",
         f"embed {FOREIGN} --dataset mnist --data-root nowhere --split test --out e.npy",
         "nowhere", "not found", absent=("--download",)),
]  # fmt: skip

PROBE = [
    case("probe-nothing-given", "probe", "run directory", "--model"),
    case("probe-missing-run", "probe nowhere", "nowhere", "no such"),
    case("probe-run-dir-without-checkpoints", "probe run", "holds no checkpoints",
         files={"run": directory()}),
    case("probe-run-with-pickled-last-pt", "probe run", "last.pt", "not a dimcollapse checkpoint",
         files={"run": pickled_run()}),
    case("probe-text-as-checkpoint", "probe notes.pt", "not a dimcollapse checkpoint",
         "not a PyTorch file", files={"notes.pt": text()}, absent=NOT_PICKLED),
    case("probe-epochs-zero", "probe {run} --epochs 0", "--epochs", "at least 1"),
    case("probe-epochs-not-integer", "probe {run} --epochs 1.5", "invalid int", "'1.5'"),
    case("probe-train-subset-negative", "probe {run} --train-subset -2", "--train-subset"),
    case("probe-train-subset-larger-than-split", "probe {run} --train-subset 100000",
         "subset", "the size of digits"),
    case("probe-features-unknown", "probe {run} --features sub", "invalid choice", "'sub'"),
    case("probe-image-size-zero", f"probe {FOREIGN} --dataset digits --image-size 0",
         "--image-size"),
    case("probe-data-root-missing", f"probe {FOREIGN} --dataset cifar10 --data-root nowhere",
         "nowhere", "not found", absent=("--download",)),
    case("probe-npz-data-root-is-npy", f"probe {FOREIGN} --dataset npz --data-root emb.npy",
         "emb.npy", ".npz", files={"emb.npy": embeddings()}, absent=("context manager",)),
    case("probe-imagefolder-without-train", f"probe {FOREIGN} --dataset imagefolder "
         "--data-root images", "images/train", "not found", files={"images": directory()}),
]  # fmt: skip

TOY = [
    case("toy-no-scenario", "toy", "required", "SCENARIO"),
    case("toy-scenario-unknown", "toy strongaug", "invalid choice", "'strongaug'"),
    case("toy-dim-huge", "toy two-layer --dim 100000", "--dim 100000", "GiB"),
    case("toy-dim-zero", "toy strong-aug --dim 0", "--dim", "at least 2"),
    case("toy-dim-negative", "toy strong-aug --dim -4", "--dim must", "-4",
         absent=("--input-var",)),
    case("toy-lr-nan", "toy strong-aug --lr nan", "--lr", "finite"),
    case("toy-batch-size-one", "toy strong-aug --batch-size 1", "--batch-size", "at least 2"),
    case("toy-noise-dims-word", "toy strong-aug --noise-dims lots", "--noise-dims", "'lots'"),
    case("toy-input-var-wrong-count", "toy strong-aug --input-var 1,2,3", "--input-var", "3"),
    case("toy-depths-out-of-range", "toy depth --depths 1,100", "--depths", "100"),
    case("toy-init-unknown", "toy strong-aug --init gaussian", "invalid choice", "'gaussian'"),
    case("toy-out-is-file", "toy strong-aug --steps 1 --out notes.txt", "notes.txt",
         "not a directory", files={"notes.txt": text()}),
]  # fmt: skip

REPRODUCE = [
    case("reproduce-out-missing", "reproduce", "required", "--out"),
    case("reproduce-scale-unknown", "reproduce --out rep --scale huge", "invalid choice"),
    case("reproduce-epochs-zero", "reproduce --out rep --epochs 0", "epochs", "at least 1"),
    case("reproduce-jobs-zero", "reproduce --out rep --jobs 0", "jobs", "at least 1"),
    case("reproduce-subset-one", "reproduce --out rep --subset 1", "subset", "at least 2"),
    case("reproduce-dataset-unknown", "reproduce --out rep --dataset imagenet",
         "unknown dataset", "imagenet"),
    case("reproduce-device-unknown", "reproduce --out rep --device tpu", "tpu"),
    case("reproduce-data-root-missing", "reproduce --out rep --data-root nowhere", "nowhere",
         "not found", absent=("--download",)),
    case("reproduce-out-is-file", "reproduce --out notes.txt", "notes.txt", "is a file",
         files={"notes.txt": text()}),
    case("reproduce-out-holds-a-training-run", "reproduce --out {run}", "holds another report",
         "choose another --out"),
]  # fmt: skip

BENCH = [
    case("bench-batch-one", "bench --device cpu --batch 1", "--batch", ">= 2"),
    case("bench-steps-zero", "bench --device cpu --steps 0", "--steps"),
    case("bench-channels-two", "bench --device cpu --channels 2", "--channels", "1 or 3"),
    case("bench-backbone-unknown", "bench --device cpu --backbone vgg", "unknown backbone"),
    case("bench-spectrum-rows-one", "bench --device cpu --spectrum-rows 1", "--spectrum-rows"),
    case("bench-device-unknown", "bench --device tpu", "tpu"),
    case("bench-spectrum-dim-huge",
         "bench --device cpu --spectrum-dim 1000000 --batch 2 --steps 1 --warmup 0 --workers 0 "
         "--width 0.125 --image-size 8", "--spectrum-dim", "GiB"),
]  # fmt: skip

# small settings: a case that is not refused (a bug) trains for a second, not for minutes
TINY_TRAIN = "train --dataset digits --epochs 1 --batch-size 64 --width 0.125 --workers 0"
TINY_TRAIN += " --subset 256 --monitor-samples 64"
TRAIN_BASE = f"{TINY_TRAIN} --out out"
CONFIG = "train --dataset digits --subset 256 --batch-size 64 --workers 0 --out out --config"
TRAIN = [
    case("train-yaml-wrong-type", f"{CONFIG} c.yaml", "setting epochs", "an integer",
         files={"c.yaml": text('epochs: "lots"\n')}),
    case("train-yaml-unknown-key", f"{CONFIG} c.yaml", "methd",
         files={"c.yaml": text("methd: directclr\n")}),
    case("train-yaml-not-a-mapping", f"{CONFIG} c.yaml", "mapping",
         files={"c.yaml": text("- epochs\n- 3\n")}),
    case("train-yaml-broken", f"{CONFIG} c.yaml", "not valid YAML",
         files={"c.yaml": text("epochs: [1\n")}),
    case("train-yaml-augment-not-a-mapping", f"{CONFIG} c.yaml", "augment",
         "mapping", files={"c.yaml": text("augment: 3\n")}),
    case("train-yaml-unknown-augment-key", f"{CONFIG} c.yaml", "flip",
         "flip_prob", files={"c.yaml": text("augment:\n  flip: 0.5\n")}),
    case("train-yaml-impossible-value", f"{CONFIG} c.yaml", "width", "-1",
         files={"c.yaml": text("width: -1\n")}),
    case("train-config-binary-file", f"{CONFIG} emb.npy", "emb.npy", "YAML",
         files={"emb.npy": embeddings()}),
    case("train-config-is-directory", f"{CONFIG} configs", "configs", "directory",
         files={"configs": directory()}),
    case("train-config-missing", f"{CONFIG} nowhere.yaml", "nowhere.yaml", "no such"),
    case("train-epochs-zero", f"{TRAIN_BASE} --epochs 0", "epochs", "at least 1"),
    case("train-width-zero", f"{TRAIN_BASE} --width 0", "width", "positive"),
    case("train-base-lr-inf", f"{TRAIN_BASE} --base-lr inf", "base lr", "inf"),
    case("train-momentum-above-one", f"{TRAIN_BASE} --momentum 1.5", "momentum"),
    case("train-checkpoint-every-malformed", f"{TRAIN_BASE} --checkpoint-every 10x",
         "checkpoint-every", "'10x'"),
    case("train-checkpoint-every-negative", f"{TRAIN_BASE} --checkpoint-every -5",
         "checkpoint-every", "'-5'"),
    case("train-max-bad-steps-negative", f"{TRAIN_BASE} --max-bad-steps -1", "max-bad-steps"),
    case("train-method-unknown", f"{TRAIN_BASE} --method simclr", "unknown method"),
    case("train-device-unknown", f"{TRAIN_BASE} --device tpu", "tpu"),
    case("train-d0-above-rep-dim", f"{TRAIN_BASE} --d0 100000", "d0", "100000"),
    case("train-small-stem-not-bool", f"{TRAIN_BASE} --small-stem maybe", "true or false"),
    case("train-crop-scale-reversed", f"{TRAIN_BASE} --aug-crop-scale 0.5 0.1", "crop scale"),
    case("train-subset-larger-than-dataset", f"{TRAIN_BASE} --subset 100000",
         "subset", "the size of digits"),
    case("train-batch-larger-than-dataset", f"{TRAIN_BASE} --batch-size 100000",
         "fewer than one", "batch"),
    case("train-data-root-missing", "train --dataset mnist --data-root nowhere --out out",
         "nowhere", "not found"),
    case("train-npz-without-data-root", "train --dataset npz --out out", "--data-root"),
    case("train-npz-is-text", "train --dataset npz --data-root data.npz --out out", "data.npz",
         "not a", files={"data.npz": text()}, absent=NOT_PICKLED),
    case("train-npz-is-directory", "train --dataset npz --data-root data.npz --out out",
         "data.npz", "directory", files={"data.npz": directory()}),
    case("train-npz-without-arrays", "train --dataset npz --data-root data.npz --out out",
         "'images' and 'labels'", files={"data.npz": npz()}),
    case("train-npz-labels-mismatch", "train --dataset npz --data-root data.npz --out out",
         "100 images but 50 labels", files={"data.npz": image_npz(labels=50)}),
    case("train-npz-test-file-missing",
         "train --dataset npz --data-root data.npz --test-file nowhere.npz --out out",
         "nowhere.npz", "not found", files={"data.npz": image_npz()}),
    case("train-out-is-file", "train --dataset digits --out notes.txt", "notes.txt",
         "is a file", files={"notes.txt": text()}),
    case("train-out-holds-a-run", "train --dataset digits --out {run}", "already holds",
         "--resume"),
    case("train-resume-nothing-there", "train --out out --resume", "nothing to resume"),
    case("train-resume-with-pickled-last-pt", "train --out run --resume", "last.pt",
         "not a dimcollapse checkpoint", files={"run": pickled_run()}),
    case("train-resume-changes-width", "train --out {run} --resume --width 0.25",
         "cannot resume", "width"),
    case("train-resume-changes-seed", "train --out {run} --resume --seed 1", "cannot resume",
         "seed"),
    case("train-resume-changes-method", "train --out {run} --resume --method simclr-mlp",
         "cannot resume", "method"),
    case("train-resume-config-changes-a-setting", "train --out {run} --resume --config c.yaml",
         "cannot resume", "temperature", files={"c.yaml": text("temperature: 0.5\n")}),
    case("train-resume-epochs-zero", "train --out {run} --resume --epochs 0", "epochs"),
]  # fmt: skip

# -- issue 17: the last holes in loading, outputs, divergence and ignored options -------------

NPY_FULL = disk_full_in("numpy", "save", OSError("22976 requested and 2016 written"))
FIGURE_FULL = disk_full_in("matplotlib.figure.Figure", "savefig", no_space())
TEXT_FULL = disk_full_in("pathlib.Path", "write_text", no_space())
TORCH_FULL = disk_full_in("torch", "save", RuntimeError("[enforce fail] unexpected pos 64 vs 0"))
QUOTA = disk_full_in("numpy", "save", OSError(errno.EDQUOT, "Disk quota exceeded"))
READ_ONLY = disk_full_in("numpy", "save", OSError(errno.EROFS, "Read-only file system"))
SHAPE = ("has shape (3, 3)", "another width or backbone")
WIDTH = ("needs", "another width or backbone")
ISSUE17 = [
    # 1. a checkpoint whose tensors do not fit the model its model_spec describes
    case("probe-checkpoint-tensor-wrong-shape", "probe ck.pt", "ck.pt", *SHAPE,
         files={"ck.pt": edited_checkpoint(first_tensor_wrong_shape)}),
    case("embed-checkpoint-tensor-wrong-shape", "embed ck.pt --split test --out e.npy", *SHAPE,
         files={"ck.pt": edited_checkpoint(first_tensor_wrong_shape)}),
    case("spectrum-checkpoint-tensor-wrong-shape", "spectrum ck.pt", *SHAPE,
         files={"ck.pt": edited_checkpoint(first_tensor_wrong_shape)}),
    case("spectrum-run-tensor-wrong-shape", "spectrum run", *SHAPE,
         files={"run": edited_run(first_tensor_wrong_shape)}),
    case("train-resume-tensor-wrong-shape", "train --out run --resume --quiet", "last.pt", *SHAPE,
         files={"run": edited_run(first_tensor_wrong_shape)}),
    case("probe-checkpoint-spec-of-another-width", "probe ck.pt", *WIDTH,
         files={"ck.pt": edited_checkpoint(spec_of_another_width)}),
    case("embed-run-spec-of-another-width", "embed run --split test --out e.npy", *WIDTH,
         files={"run": edited_run(spec_of_another_width)}),
    case("probe-checkpoint-tensor-missing", "probe ck.pt", "the weights lack",
         files={"ck.pt": edited_checkpoint(tensor_removed)}),
    # 2. a model_spec with a field this version does not know
    case("probe-model-spec-unknown-field", "probe ck.pt", "model_spec", "unknown field",
         "colour", files={"ck.pt": edited_checkpoint(spec_with_unknown_field)}),
    case("embed-model-spec-unknown-field", "embed ck.pt --split test --out e.npy",
         "unknown field", "colour", files={"ck.pt": edited_checkpoint(spec_with_unknown_field)}),
    case("spectrum-model-spec-unknown-field", "spectrum run", "unknown field", "colour",
         files={"run": edited_run(spec_with_unknown_field)}),
    # 3. outputs where no file can be
    case("train-out-under-proc", f"{TINY_TRAIN} --out /proc/dimcollapse-run", "/proc",
         "proc file system"),
    case("spectrum-plot-under-proc", "spectrum emb.npy --plot /proc/spectrum.png", "--plot",
         "proc file system", files={"emb.npy": embeddings()}),
    case("toy-out-under-proc", "toy strong-aug --steps 1 --out /proc/toy", "proc file system"),
    case("embed-out-under-proc", "embed {run} --split test --out /proc/e.npy",
         "proc file system"),
    case("embed-out-under-sys", "embed {run} --split test --out /sys/e.npy", "sysfs"),
    case("toy-out-under-dev", "toy strong-aug --steps 1 --out /dev/toy", "devtmpfs"),
    case("train-out-under-a-file", f"{TINY_TRAIN} --out notes.txt/run", "notes.txt",
         "not a directory", files={"notes.txt": text()}),
    case("spectrum-plot-under-a-file", "spectrum emb.npy --plot notes.txt/s.png", "notes.txt",
         "not a directory", files={"emb.npy": embeddings(), "notes.txt": text()}),
    case("embed-out-under-a-file", "embed {run} --split test --out notes.txt/e.npy",
         "notes.txt", "not a directory", files={"notes.txt": text()}),
    # 3-4. a full disk, a quota, a read-only file system: the file and its own disk's space
    case("embed-out-disk-full", "embed {run} --split test --out e.npy", "e.npy",
         "no space left", "MiB free on the file system of", patch=NPY_FULL,
         absent=("requested and",)),
    case("embed-labels-disk-full", "embed {run} --split test --labels --out e.npy",
         "no space left", "MiB free", patch=NPY_FULL),
    case("embed-out-quota", "embed {run} --split test --out e.npy", "e.npy",
         "disk quota exceeded", "MiB free", patch=QUOTA),
    case("embed-out-read-only", "embed {run} --split test --out e.npy", "e.npy",
         "read-only file system", patch=READ_ONLY),
    case("spectrum-plot-disk-full", "spectrum emb.npy --plot s.png", "s.png", "no space left",
         "MiB free on the file system of", files={"emb.npy": embeddings()}, patch=FIGURE_FULL),
    case("toy-out-disk-full", "toy strong-aug --steps 2 --out toys", "strong-aug.json",
         "no space left", "MiB free", patch=TEXT_FULL),
    case("train-checkpoint-disk-full", f"{TRAIN_BASE}", "last.pt", "no space left",
         "MiB free", patch=TORCH_FULL),
    # 5. divergence that stays finite
    case("train-sgd-absurd-lr-finite-divergence",
         f"{TRAIN_BASE} --optimizer sgd --base-lr 1e6 --epochs 2", "diverged",
         "online probe's loss", "1000x", "lower the learning rate"),
    case("train-lars-absurd-lr", f"{TRAIN_BASE} --base-lr 1e6 --epochs 2", "diverged",
         absent=("covariance",)),
    case("train-lars-absurd-lr-without-online-probe",
         f"{TRAIN_BASE} --base-lr 1e6 --epochs 2 --online-probe false", "diverged",
         "held-out", absent=("covariance",)),
    # 6. options that do not apply to the input
    case("spectrum-key-on-npy", "spectrum emb.npy --key z", "--key", "does not apply", ".npy",
         files={"emb.npy": embeddings()}),
    case("spectrum-data-root-on-embeddings-file", "spectrum emb.npy --data-root data",
         "--data-root", "embeddings files", files={"emb.npy": embeddings()}),
    case("spectrum-subset-on-embeddings-file", "spectrum emb.npy --subset 10", "--subset",
         "embeddings files", files={"emb.npy": embeddings()}),
    case("spectrum-data-root-on-digits-run", "spectrum {run} --data-root /nonexistent",
         "--data-root", "digits"),
    case("spectrum-test-file-without-model", "spectrum {run} --test-file t.npz", "--test-file"),
    case("train-data-root-on-digits", f"{TRAIN_BASE} --data-root data", "--data-root",
         "digits"),
    case("train-test-file-on-digits", f"{TRAIN_BASE} --test-file t.npz", "--test-file", "npz"),
    case("train-test-file-on-mnist",
         "train --dataset mnist --data-root nowhere --test-file t.npz --out out", "--test-file",
         "npz"),
    case("train-yaml-data-root-on-digits", f"{CONFIG} c.yaml", "--data-root", "digits",
         files={"c.yaml": text("data_root: somewhere\n")}),
    case("probe-data-root-on-digits-run", "probe {run} --data-root /nonexistent",
         "--data-root", "digits"),
    case("probe-test-file-on-run", "probe {run} --test-file t.npz", "--test-file", "a run"),
    case("probe-foreign-data-root-on-digits", f"probe {FOREIGN} --dataset digits --data-root d",
         "--data-root", "digits"),
    case("probe-foreign-test-file-on-digits", f"probe {FOREIGN} --dataset digits --test-file t",
         "--test-file", "npz"),
    case("embed-data-root-on-digits-run", "embed {run} --split test --out e.npy --data-root d",
         "--data-root", "digits"),
    case("embed-test-file-on-run", "embed {run} --split test --out e.npy --test-file t.npz",
         "--test-file"),
    case("embed-foreign-test-file-on-digits",
         f"embed {FOREIGN} --dataset digits --test-file t.npz --split test --out e.npy",
         "--test-file", "npz"),
    case("toy-depths-empty-item", "toy depth --depths 1,,2", "--depths", "empty item"),
    case("toy-depths-trailing-comma", "toy depth --depths 1,2,", "--depths", "empty item"),
    case("toy-input-var-empty-item", "toy strong-aug --dim 2 --input-var 1,,2", "--input-var",
         "empty item"),
    # 7. a failure part of the way leaves nothing of its own behind
    case("train-image-folder-with-corrupt-jpeg",
         "train --dataset imagefolder --data-root images --aug-image-size 8 --epochs 1 "
         "--batch-size 4 --width 0.125 --workers 0 --monitor-samples 4 --out out",
         "broken.jpg", files={"images": image_folder_with_corrupt_jpeg}),
    case("toy-figure-write-fails", "toy strong-aug --steps 2 --out toys", "strong-aug.png",
         "no space left", patch=FIGURE_FULL),
]  # fmt: skip

# -- issue 24: one writer per output, and the remaining bad inputs -----------------------------

LONG = "a" * 300  # a name longer than any file system takes (255 bytes)
TOO_LONG = ("300 bytes", "at most 255")
BUSY = ("another dimcollapse process", "is writing there")
RESUME = "train --out run --resume --quiet"
HUGE_SEED = "100000000000000000000"
SEED_RANGE = ("--seed", "4294967295", HUGE_SEED)
ISSUE24 = [
    # 1. one run per folder: a second writer is refused and leaves the first one's files alone
    case("train-out-being-written", TRAIN_BASE, "--out out", *BUSY,
         files={"out": being_written()}),
    case("train-resume-while-being-written", RESUME, "--out run", *BUSY,
         files={"run": being_written(edited_run(lambda payload: None))}),
    case("toy-out-being-written", "toy strong-aug --steps 2 --out toys", "--out toys", *BUSY,
         files={"toys": being_written()}),
    case("reproduce-out-being-written", "reproduce --out rep", "--out rep", *BUSY,
         files={"rep": being_written()}),
    case("embed-out-being-written", "embed {run} --split test --out e.npy", "--out e.npy", *BUSY,
         files={".e.npy.lock": lock_file_held()}),
    case("spectrum-plot-being-written", "spectrum emb.npy --plot s.png", "--plot s.png", *BUSY,
         files={"emb.npy": embeddings(), ".s.png.lock": lock_file_held()}),
    # 2. a name longer than the file system takes
    case("train-out-name-too-long", f"{TINY_TRAIN} --out {LONG}", "--out", *TOO_LONG),
    case("train-out-under-a-name-too-long", f"{TINY_TRAIN} --out {LONG}/run", "--out",
         *TOO_LONG),
    case("toy-out-name-too-long", f"toy strong-aug --steps 2 --out {LONG}", "--out",
         *TOO_LONG),
    case("reproduce-out-name-too-long", f"reproduce --out {LONG}", "--out", *TOO_LONG),
    case("embed-out-name-too-long", f"embed {{run}} --split test --out {LONG}.npy", "--out",
         "304 bytes", "at most 255"),
    # 3. a seed outside 0 .. 2**32 - 1, refused alike by every command
    case("train-seed-too-large", f"{TRAIN_BASE} --seed {HUGE_SEED}", "seed", *SEED_RANGE[1:]),
    case("train-seed-negative", f"{TRAIN_BASE} --seed -1", "seed", "4294967295", "-1"),
    case("train-yaml-seed-too-large", f"{CONFIG} c.yaml", "seed", "4294967296",
         files={"c.yaml": text("seed: 4294967296\n")}),
    case("toy-seed-too-large", f"toy two-layer --steps 2 --seed {HUGE_SEED}", *SEED_RANGE),
    case("toy-seed-negative", "toy two-layer --steps 2 --seed -1", "--seed", "4294967295"),
    case("embed-seed-too-large",
         f"embed {{run}} --split test --subset 10 --out e.npy --seed {HUGE_SEED}", *SEED_RANGE),
    case("probe-seed-too-large", f"probe {{run}} --seed {HUGE_SEED}", *SEED_RANGE),
    case("reproduce-seed-too-large", f"reproduce --out rep --seed {HUGE_SEED}", *SEED_RANGE),
    case("bench-seed-too-large", f"bench --device cpu --seed {HUGE_SEED}", *SEED_RANGE),
    # 4. a resumed checkpoint's model_spec and config are held to config.yaml's rules
    case("train-resume-model-spec-garbage", RESUME, "last.pt", "model_spec", "not a mapping",
         files={"run": edited_run(garbage_spec)}),
    case("train-resume-model-spec-of-another-seed", RESUME, "last.pt", "model_spec has seed=7",
         "build seed=0", files={"run": edited_run(spec_of_another_seed)}),
    case("train-resume-model-spec-of-another-width", RESUME, "model_spec has width=0.25",
         files={"run": edited_run(spec_of_another_width)}),
    case("train-resume-model-spec-unknown-field", RESUME, "model_spec", "unknown field",
         "colour", files={"run": edited_run(spec_with_unknown_field)}),
    case("train-resume-checkpoint-config-unknown-key", RESUME, "last.pt (its config)",
         "unknown training setting(s): colour", files={"run": edited_run(config_with_unknown_key)}),
    case("train-resume-config-yaml-unknown-key", RESUME, "config.yaml",
         "unknown training setting(s): colour", files={"run": run_with_config_yaml(colour="red")}),
    case("train-resume-checkpoint-config-wrong-type", RESUME, "last.pt (its config)",
         "setting epochs", "an integer", files={"run": edited_run(config_with_wrong_type)}),
    case("train-resume-config-yaml-wrong-type", RESUME, "config.yaml", "setting epochs",
         "an integer", files={"run": run_with_config_yaml(epochs="many")}),
    # 5. a diverged toy run fails and writes nothing
    case("toy-two-layer-diverges", "toy two-layer --lr 1e9 --steps 20 --out toys", "two-layer",
         "diverged", "eq11_rel_err", "nothing written", "lower --lr"),
    case("toy-two-layer-diverges-into-existing-folder",
         "toy two-layer --lr 1e9 --steps 20 --out toys", "diverged", "nothing written",
         files={"toys": directory()}),
    # 6. every value of a YAML file is type-checked, also one an option overrides
    case("train-yaml-wrong-type-overridden", f"{CONFIG} c.yaml --epochs 1", "c.yaml",
         "setting epochs", "an integer", "'many'", files={"c.yaml": text("epochs: many\n")}),
    case("train-yaml-wrong-type-overridden-on-resume",
         "train --out {run} --resume --epochs 3 --config c.yaml", "c.yaml", "setting epochs",
         files={"c.yaml": text("epochs: many\n")}),
    case("train-yaml-unknown-key-beside-options", f"{CONFIG} c.yaml --epochs 1", "c.yaml",
         "methd", files={"c.yaml": text("methd: directclr\n")}),
]  # fmt: skip

CASES = SPECTRUM + EMBED + PROBE + TOY + REPRODUCE + BENCH + TRAIN + ISSUE17 + ISSUE24


# -- shared inputs and the checks ---------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny finished digits run (a few seconds)."""
    out = tmp_path_factory.mktemp("shared") / "run"
    assert main(f"{TINY_TRAIN} --quiet --out {out}".split()) == 0
    SHARED["run"] = out
    return out


@pytest.fixture(scope="module", autouse=True)
def _release_held_locks():
    """Close the descriptors of the locks the "being written" cases hold."""
    import os

    yield
    while HELD:
        os.close(HELD.pop())


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "r18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def snapshot(*roots: Path) -> dict[str, object]:
    """Every file and folder under ``roots``: folders as None, small files by content, large
    ones (the weights) by size, modification time and inode."""
    state: dict[str, object] = {}
    for root in roots:
        for p in (root, *root.rglob("*")):
            if p.is_dir():
                state[str(p)] = None
            else:
                st = p.stat()
                by_stat = (st.st_size, st.st_mtime_ns, st.st_ino)
                state[str(p)] = p.read_bytes() if st.st_size < 1 << 20 else by_stat
    return state


HIDDEN_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_as_a_user_sees_it(cli, argv: list[str]) -> tuple[tuple[int, str, str], list[str]]:
    """``cli(*argv)``, an uncaught exception as the traceback and exit status 1 that a user
    would get, and every warning printed beside the error under Python's default filters."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for hidden in HIDDEN_BY_DEFAULT:
            warnings.simplefilter("ignore", hidden)
        try:
            result = cli(*argv)
        except Exception:  # noqa: BLE001 - any escape is a finding, reported with the rest
            result = (1, "", traceback.format_exc())
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.mark.parametrize("argv, files, fragments, absent, patch", CASES)
def test_bad_input_is_one_error_line_and_writes_nothing(
    cli, tmp_path, monkeypatch, finished_run, resnet18_weights, argv, files, fragments, absent,
    patch,
):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name, write in files.items():
        write(tmp_path / name)
    if patch is not None:
        patch(monkeypatch)
    words = argv.format(run=finished_run, weights=resnet18_weights).split()
    roots = (tmp_path, finished_run.parent, resnet18_weights.parent)
    before = snapshot(*roots)

    result, shown_warnings = run_as_a_user_sees_it(cli, words)
    after = snapshot(*roots)

    problems = []  # every one of them, so that a failure report is complete
    try:
        assert_usage_error(result, *fragments)
    except AssertionError as exc:
        problems.append(f"message: {exc}")
    problems += [f"says {wrong!r}: {result[2]!r}" for wrong in absent if wrong in result[2]]
    problems += [f"printed beside the error: {w}" for w in shown_warnings]
    problems += [f"left behind: {p}" for p in sorted(set(after) - set(before))]
    problems += [f"removed: {p}" for p in sorted(set(before) - set(after))]
    problems += [f"changed: {p}" for p in before if p in after and before[p] != after[p]]
    assert not problems, "\n".join(problems)


def test_the_corpus_covers_every_command():
    commands = {param.values[0].split()[0] for param in CASES}
    assert commands == {"train", "spectrum", "embed", "probe", "toy", "reproduce", "bench"}
    assert len(CASES) >= 150
    assert len({param.id for param in CASES}) == len(CASES)
