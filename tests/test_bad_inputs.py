"""A corpus of bad inputs to every command: each is refused with exit status 2 and one
``error:`` line that says what is really wrong, with no traceback and no warning beside it, and
nothing is written: no new file, no changed file, nothing the user had lost or overwritten.

Each case runs in its own tmp_path (the working directory), where a factory per input kind
first writes the bad file; the commands that need a trained run or weights share one tiny run
and one ResNet-18 state_dict per module. Each input should be refused before training starts."""

from __future__ import annotations

import pickle
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


# -- the corpus --------------------------------------------------------------------------------


def case(
    case_id: str,
    argv: str,
    *fragments: str,
    files: dict[str, Factory] | None = None,
    absent: tuple[str, ...] = (),
):
    """``argv``: the command line, split on spaces; {run} and {weights} name the shared tiny
    run and ResNet-18 weights, other paths are relative to the case's tmp_path. ``fragments``
    must appear in the error line, ``absent`` must not (a wrong diagnosis, advice to use an
    option the command does not have, a leaked internal message)."""
    return pytest.param(argv, files or {}, fragments, absent, id=case_id)


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

CASES = SPECTRUM + EMBED + PROBE + TOY + REPRODUCE + BENCH + TRAIN


# -- shared inputs and the checks ---------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A tiny finished digits run (a few seconds)."""
    out = tmp_path_factory.mktemp("shared") / "run"
    assert main(f"{TINY_TRAIN} --quiet --out {out}".split()) == 0
    return out


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


@pytest.mark.parametrize("argv, files, fragments, absent", CASES)
def test_bad_input_is_one_error_line_and_writes_nothing(
    cli, tmp_path, monkeypatch, finished_run, resnet18_weights, argv, files, fragments, absent
):
    monkeypatch.chdir(tmp_path)
    for name, write in files.items():
        write(tmp_path / name)
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
    assert len(CASES) >= 65
    assert len({param.id for param in CASES}) == len(CASES)
