"""8-bit quantisation-aware training (PyTorch `torch.ao.quantization`, eager mode) for the `sws` scheme.

The SWS paper (arXiv 2408.17245, Appendix A) converts a PyTorch-QAT model: Conv/Linear+BN(+ReLU)
fused, the default QAT qconfig, 8-bit activations.  The workflow here:

    qat = prepare_qat(model)                  # QuantStub/DeQuantStub, fusion, fake quantisers
    ... train qat as usual (a few epochs) ...
    export_qat_onnx(qat, example, "model_qat.onnx")      # QuantizeLinear/DequantizeLinear ONNX
    neurodeploy compile model_qat.onnx --scheme sws       # or nd.compile(qat, example, scheme="sws")

Activations are quint8 0..255 per tensor (MovingAverageMinMax observer, zero point 0 after a
ReLU) and weights qint8 symmetric in -127..127 (per tensor as qnnpack, or per output channel as
fbgemm/x86 with `per_channel=True`; the sws compiler keeps per-tensor integer weights exactly,
per-channel ones go through its generic weight quantisation).  PyTorch's fbgemm/x86 default sets `reduce_range` (activations
0..127, to avoid an overflow of x86 VNNI kernels); it is not used here because Loihi has no
such overflow and the paper's Tc = 8 coding carries 255 levels.

The torch.export front end does not understand fake-quant modules: `nd.compile(qat_model, ...)`
exports to QDQ ONNX in a temporary directory and compiles that file.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.ao.quantization as tq
from torch import nn

from ..errors import NeurodeployError

_FUSABLE = [  # longest first: (Conv, BN, ReLU) before (Conv, BN)
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv2d, nn.ReLU),
    (nn.Linear, nn.BatchNorm1d, nn.ReLU), (nn.Linear, nn.BatchNorm1d), (nn.Linear, nn.ReLU),
]


class QuantModel(nn.Module):
    """`model` between a QuantStub (the 8-bit input quantiser) and a DeQuantStub."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.quant, self.model, self.dequant = tq.QuantStub(), model, tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.model(self.quant(x)))


def qat_qconfig(per_channel: bool = False) -> tq.QConfig:
    """8-bit QAT qconfig: quint8 0..255 activations, qint8 symmetric weights (fake-quant modules
    that torch.onnx exports as QuantizeLinear/DequantizeLinear)."""
    # weights in -127..127 (not PyTorch's -128): Loihi's signed 8-bit weight mantissa is
    # symmetric, so the model's integers are the chip's mantissas unchanged
    if per_channel:
        weight = tq.FakeQuantize.with_args(observer=tq.MovingAveragePerChannelMinMaxObserver, quant_min=-127,
                                           quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                           ch_axis=0)
    else:
        weight = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=-127, quant_max=127,
                                           dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    activation = tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                           dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False)
    return tq.QConfig(activation=activation, weight=weight)


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """Qualified names of consecutive Conv/Linear(+BN)(+ReLU) modules inside nn.Sequential containers."""
    groups = []
    for prefix, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        names = list(mod._modules)
        i = 0
        while i < len(names):
            for pattern in _FUSABLE:
                window = names[i:i + len(pattern)]
                if len(window) == len(pattern) and all(
                        type(mod._modules[n]) is t for n, t in zip(window, pattern)):
                    groups.append([f"{prefix}.{n}" if prefix else n for n in window])
                    i += len(pattern) - 1
                    break
            i += 1
    return groups


def prepare_qat(model: nn.Module, per_channel: bool = False, fuse: list[list[str]] | None = None) -> QuantModel:
    """A QAT copy of a float model: wrapped in Quant/DeQuant stubs, fused, fake-quantised.

    fuse: module groups to fuse (names inside `model`); None = every Conv/Linear(+BN)(+ReLU) run
    in an nn.Sequential (`fusion_groups`).  A ReLU that is not fused keeps a float ReLU before
    the next quantiser, which the compiler folds away (zero point 0).  The input model is not
    modified.  Train the result in train mode; BN statistics and observers update as usual
    (`freeze(qat)` stops both for the final epochs, as in the paper's recipe).
    """
    qm = QuantModel(copy.deepcopy(model)).train()
    groups = fusion_groups(qm.model) if fuse is None else fuse
    if groups:
        tq.fuse_modules_qat(qm.model, groups, inplace=True)
    qm.qconfig = qat_qconfig(per_channel)
    tq.prepare_qat(qm, inplace=True)
    return qm


def freeze(qat: nn.Module, observers: bool = True, batchnorm: bool = True) -> nn.Module:
    """Stop updating scales/zero points (observers) and/or BN statistics (paper A.2's recipe)."""
    if observers:
        qat.apply(tq.disable_observer)
    if batchnorm:
        qat.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
    return qat


def export_qat_onnx(qat: nn.Module, example: torch.Tensor, path: str | Path, opset: int = 13) -> Path:
    """Write a QAT model (from `prepare_qat`) as a QDQ ONNX file; returns the path.

    Uses the TorchScript exporter (`dynamo=False`): it turns fake_quantize_per_{tensor,channel}
    _affine into QuantizeLinear/DequantizeLinear (opset >= 13 for per-channel weights); the
    dynamo exporter does not handle fake quantisation.  Observers are disabled on a copy first
    (an observer update would be traced as in-place ops the exporter rejects).  The batch
    dimension stays dynamic; input "input", output "output".
    """
    if not any(isinstance(m, tq.FakeQuantizeBase) for m in qat.modules()):
        raise NeurodeployError("the model has no fake-quantisers", type(qat).__name__,
                               "prepare it with neurodeploy.nn.qat.prepare_qat and train it first")
    m = copy.deepcopy(qat).eval()
    m.apply(tq.disable_observer)
    for fq in m.modules():
        # ONNX QuantizeLinear has no -127..127 int8 range; the scales were observed for it
        # (s = max|w|/127), so code -128 occurs only for a weight trained beyond the frozen range
        if isinstance(fq, tq.FakeQuantize) and fq.dtype == torch.qint8 and fq.quant_min == -127:
            fq.quant_min = fq.activation_post_process.quant_min = -128     # forward reads the observer's
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # TorchScript exporter deprecation notices
        torch.onnx.export(m, (example[:1],), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path
