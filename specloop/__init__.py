"""specloop: spec-driven multi-agent loops for ML engineering."""

__version__ = "0.1.0"
