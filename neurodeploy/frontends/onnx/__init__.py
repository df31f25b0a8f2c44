"""ONNX front end: an .onnx file -> `FloatGraph` (see handlers.py)."""
from .handlers import HANDLERS, load_onnx, model_sha256, supported_ops

__all__ = ["HANDLERS", "load_onnx", "model_sha256", "supported_ops"]
