"""nasrank: learn to rank neural architectures from a few measured ones."""

__version__ = "0.1.0"
