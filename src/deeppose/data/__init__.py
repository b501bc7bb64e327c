"""Datasets: loaders for LSP, LSPET, MPII, COCO, FLIC, a custom format and synthetic people."""

from deeppose.data.registry import LOADERS, load_dataset
from deeppose.data.sample import PoseDataset, Sample, Skipped

__all__ = ["LOADERS", "PoseDataset", "Sample", "Skipped", "load_dataset"]
