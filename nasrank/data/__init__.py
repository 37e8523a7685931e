"""DataModules of architecture-ranking splits: a benchmark table (`ArchRankDataModule`) or a user's own
measurements (`custom_datamodule`, `data=custom`); the supernet's image data lives in `nasrank.supernet`."""

from nasrank.data.custom import custom_datamodule
from nasrank.data.datamodule import ArchRankDataModule

__all__ = ["ArchRankDataModule", "custom_datamodule"]
