"""DataModules: architecture-ranking splits (and, later, image data for supernets)."""

from nasrank.data.datamodule import ArchRankDataModule

__all__ = ["ArchRankDataModule"]
