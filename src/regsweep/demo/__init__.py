"""A generated demo registry: realistic content in Distribution's exact storage layout."""

from regsweep.demo.generator import DemoSummary, StaleUpload, generate_demo

__all__ = ["DemoSummary", "StaleUpload", "generate_demo"]
