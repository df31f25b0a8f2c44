"""What users train with: the QCFS activation, spiking neurons (LIF) with surrogate gradients,
ReverB's binary layers and graded-spike neuron, ONNX export and torch.export programs (.pt2),
8-bit quantisation-aware training with QDQ ONNX export (`qat`, for the sws scheme)."""

from .export import export_onnx, fold_batchnorm, verify_onnx
from .lif import LIF, SpikingNeuron, SpikingSequential, multistep, reset_net, set_mode
from .program import export_program
from .qcfs import QCFS, relu_to_qcfs
from .qat import export_qat_onnx, prepare_qat
from .reverb import BinaryConv2d, BinaryLinear, ReverBBasicBlock, ReverBNeuron
from .surrogate import ATan, Rectangle, Sigmoid, Surrogate

__all__ = ["QCFS", "relu_to_qcfs", "export_onnx", "fold_batchnorm", "verify_onnx", "export_program",
           "LIF", "SpikingNeuron", "SpikingSequential", "multistep", "reset_net", "set_mode",
           "Surrogate", "Sigmoid", "ATan", "Rectangle",
           "BinaryConv2d", "BinaryLinear", "ReverBNeuron",
           "prepare_qat", "export_qat_onnx"]
