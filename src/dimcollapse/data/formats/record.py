"""What the table of datasets holds: one :class:`DatasetFormat` per dataset, and the
:class:`Request` its reader is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dimcollapse.data.image_dataset import ImageDataset

#: ``(mean, std)`` per channel, on the 0..1 scale.
Normalization = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Request:
    """One split asked of a reader: ``root`` (the data directory, or for ``npz`` the train file),
    ``fetch`` (the advice for missing files: how to get them), ``test_file`` (``npz``'s test
    split) and ``image_size`` (``imagefolder``'s target size; ``None``: its default)."""

    split: str
    root: str | None
    fetch: str
    test_file: str | None = None
    image_size: int | None = None


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset's facts.

    name: the ``--dataset`` value; reader: ``reader(fmt, request)`` reads one split as an
    :class:`~dimcollapse.data.image_dataset.ImageDataset`; help: one line on its files;
    normalization: the published ``(mean, std)``, or ``None`` where the reader computes them
    from the data; torchvision: the ``torchvision.datasets`` class that downloads it (also the
    folder of torchvision's layout under a root), ``None``: it cannot be downloaded; needs_root:
    what ``--data-root`` must name (``None``: nothing); default_dir: where its files are looked
    for without a root; mirror: whether a mirrored image keeps its class, i.e. whether the
    augmentation may flip it (a mirrored digit can be another digit, a mirrored shoe is a shoe).
    """

    name: str
    reader: Callable[[DatasetFormat, Request], ImageDataset]
    help: str
    normalization: Normalization | None = None
    torchvision: str | None = None
    needs_root: str | None = "a data directory"
    default_dir: str | None = None
    mirror: bool = True

    @property
    def downloadable(self) -> bool:
        """Whether torchvision can fetch its files (``--download``)."""
        return self.torchvision is not None
