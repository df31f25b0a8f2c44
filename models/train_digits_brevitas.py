#!/usr/bin/env python
"""Train a small Brevitas QAT CNN on scikit-learn's 8x8 digits; export it with Brevitas' own exporters.

    python models/train_digits_brevitas.py [--epochs N] [--out models/] [--seed S]

Writes to ``--out``: digits_brevitas_qcdq.onnx (``export_onnx_qcdq``: QuantizeLinear -> Clip ->
DequantizeLinear), digits_brevitas_qonnx.onnx (``export_qonnx``: QONNX ``Quant`` ops),
digits_brevitas.pt (the state_dict, for Brevitas' own forward in tests/test_brevitas.py) and
digits_brevitas.json (metadata and accuracies: Brevitas in PyTorch, the QCDQ file in
onnxruntime).  Both files compile with ``neurodeploy compile FILE --scheme bitplane``: every
activation is an unsigned ``ACT_BITS``-bit quantiser with zero point 0 (2^b - 1 levels), so
bitplane needs T = ACT_BITS steps and no calibration (the input has its own quantiser).

The network: QuantIdentity (unsigned 4-bit input quantiser; pixels/16 are in [0, 1]),
QuantConv2d -> QuantReLU -> MaxPool twice, QuantLinear readout; 4-bit per-tensor weights,
float biases.  Test data: the split of models/train_digits.py.  Deterministic for a given seed,
the same bits on any x86-64 CPU (fixed generators, the float code path pinned by
``train_digits.setup``).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from train_digits import onnx_predict, setup, torch_accuracy as accuracy  # noqa: E402
from train_digits_qat import train  # noqa: E402
from neurodeploy.reproducible import numerics_settings  # noqa: E402
from neurodeploy.train.checkpoint import write_model_card  # noqa: E402

SEED = 0
ACT_BITS = 4          # activation codes 0..15: bitplane's T
WEIGHT_BITS = 4
PREFIX = "digits_brevitas"
LR = 3e-3             # Adam; 1e-2 (train_digits_qat's float rate) leaves this QAT net at chance


ARCHITECTURE = (f"QuantIdentity(u{ACT_BITS}) -> QuantConv2d(1, 8, 3, pad 1, w{WEIGHT_BITS}) -> QuantReLU(u{ACT_BITS}) -> "
                f"MaxPool2d(2) -> QuantConv2d(8, 16, 3, pad 1, w{WEIGHT_BITS}) -> QuantReLU(u{ACT_BITS}) -> MaxPool2d(2) "
                f"-> Flatten -> QuantLinear(64, 10, w{WEIGHT_BITS})")


def build_model(pool=nn.MaxPool2d) -> nn.Module:
    """The Brevitas network (quantisers with Brevitas' default per-tensor float scales); `pool`
    the 2x2 pooling module (tests/test_brevitas.py builds an average-pooled one for `sws`)."""
    import brevitas.nn as qnn
    from brevitas.quant import Uint8ActPerTensorFloat

    def relu():
        return qnn.QuantReLU(bit_width=ACT_BITS, return_quant_tensor=True)

    def conv(c_in, c_out):
        return qnn.QuantConv2d(c_in, c_out, 3, padding=1, weight_bit_width=WEIGHT_BITS)

    return nn.Sequential(
        qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=ACT_BITS, return_quant_tensor=True),
        conv(1, 8), relu(), pool(2),
        conv(8, 16), relu(), pool(2),
        nn.Flatten(),
        qnn.QuantLinear(64, 10, bias=True, weight_bit_width=WEIGHT_BITS),
    )


def quantiser_outputs(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Brevitas' own integer codes of every activation quantiser on x (module name -> int64
    codes), from its QuantTensor outputs (value / scale)."""
    import brevitas.nn as qnn
    codes, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, (qnn.QuantReLU, qnn.QuantIdentity)):
            def hook(_m, _inp, out, name=name):
                codes[name] = np.rint((out.value / out.scale).detach().numpy()).astype(np.int64)
            hooks.append(mod.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    codes["logits"] = logits.detach().numpy()
    return codes


def export(model: nn.Module, example: torch.Tensor, out: str, prefix: str = PREFIX) -> tuple[str, str]:
    """Brevitas' QCDQ and QONNX exports (opset 18, the dynamo exporter's lowest; batch dynamic)."""
    from brevitas.export import export_onnx_qcdq, export_qonnx
    qcdq, qonnx = os.path.join(out, f"{prefix}_qcdq.onnx"), os.path.join(out, f"{prefix}_qonnx.onnx")
    # one self-contained file each (the dynamo exporter's default writes the weights beside it)
    kwargs = dict(opset_version=18, dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), external_data=False)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx_qcdq(model, example, export_path=qcdq, **kwargs)
        export_qonnx(model, example, export_path=qonnx, **kwargs)
    for path in (qcdq, qonnx):
        _strip_trace_metadata(path)
    return qcdq, qonnx


def _strip_trace_metadata(path: str) -> None:
    """Drop the dynamo exporter's per-node debugging metadata (Python stack traces holding this
    machine's paths, fx node dumps): the committed files are then the same on any machine.  The
    graph, its initializers and the opsets are untouched."""
    import onnx
    m = onnx.load(path)
    for node in m.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        del vi.metadata_props[:]
    for init in m.graph.initializer:
        del init.metadata_props[:]
    onnx.save(m, path)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)

    setup(args.seed)
    from neurodeploy.train.data import digits
    xtr, ytr, xte, yte = digits(args.seed)
    model = build_model()
    t = train(model, torch.from_numpy(xtr), torch.from_numpy(ytr), args.epochs, LR, args.seed)
    acc = accuracy(model, xte, yte)
    print(f"Brevitas QAT CNN ({ACT_BITS}-bit activations, {WEIGHT_BITS}-bit weights): test acc {acc:.4f} "
          f"({t:.1f}s)", flush=True)

    os.makedirs(args.out, exist_ok=True)
    qcdq, _ = export(model, torch.from_numpy(xte[:2]), args.out)
    torch.save(model.state_dict(), os.path.join(args.out, f"{PREFIX}.pt"))
    out = onnx_predict(qcdq, xte)
    ref = quantiser_outputs(model, xte)["logits"]
    import brevitas
    meta = {
        "model": PREFIX, "seed": args.seed, "epochs": args.epochs, "architecture": ARCHITECTURE,
        "activation_bits": ACT_BITS, "weight_bits": WEIGHT_BITS,
        "test_accuracy_brevitas_torch": acc,
        "test_accuracy_qcdq_onnx": float((out.argmax(1) == yte).mean()),
        "argmax_agreement_qcdq_onnx_vs_torch": float((out.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_diff_qcdq_onnx_vs_torch": float(np.abs(out - ref).max()),
        "train_time_s": round(t, 3), "n_train": int(len(xtr)), "n_test": int(len(xte)),
        "files": sorted([f"{PREFIX}_qcdq.onnx", f"{PREFIX}_qonnx.onnx", f"{PREFIX}.pt", f"{PREFIX}.json"]),
        "torch_version": torch.__version__, "brevitas_version": brevitas.__version__,
        "numerics": numerics_settings(),
    }
    write_model_card(os.path.join(args.out, f"{PREFIX}.json"), meta,
                     ("test_accuracy_brevitas_torch", "test_accuracy_qcdq_onnx",
                      "argmax_agreement_qcdq_onnx_vs_torch", "train_time_s"))
    return meta


if __name__ == "__main__":
    main()
