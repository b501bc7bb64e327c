"""Dataset names -> loader functions (an explicit table, no import-time registration)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deeppose.data.coco import load_coco, load_multi
from deeppose.data.collect import OnBad
from deeppose.data.custom import load_custom
from deeppose.data.flic import load_flic
from deeppose.data.lsp import load_lsp, load_lspet
from deeppose.data.mpii import load_mpii
from deeppose.data.sample import PoseDataset
from deeppose.data.synthetic import load_synthetic

LOADERS: dict[str, Callable[..., PoseDataset]] = {
    "lsp": load_lsp,
    "lspet": load_lspet,
    "mpii": load_mpii,
    "coco": load_coco,
    "multi": load_multi,
    "flic": load_flic,
    "custom": load_custom,
    "synthetic": load_synthetic,
}


def load_dataset(name: str, root: str | Path, split: str = "train", on_bad: OnBad = "error") -> PoseDataset:
    """Load dataset `name` ("lsp", "lspet", "mpii", "coco", "flic", "custom", "synthetic") from `root`.

    >>> ds = load_dataset("lsp", "../shared/data/lsp", "test")  # doctest: +SKIP
    >>> len(ds), ds.skeleton.name  # doctest: +SKIP
    (1000, 'lsp14')
    """
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name](root, split=split, on_bad=on_bad)
