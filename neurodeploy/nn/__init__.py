"""Training-side helpers: the QCFS activation and ONNX export."""

from .export import export_onnx, fold_batchnorm, verify_onnx
from .qcfs import QCFS, relu_to_qcfs

__all__ = ["QCFS", "relu_to_qcfs", "export_onnx", "fold_batchnorm", "verify_onnx"]
