"""regsweep: storage maintenance for CNCF Distribution container registries."""

__version__ = "0.1.0"

__all__ = ["__version__"]
