"""gpumetrics: GPU metrics for LLM inference that say whether the GPU does useful work."""

__version__ = "0.1.0"

__all__ = ["__version__"]
