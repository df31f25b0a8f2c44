"""`verify`: the float model, the quantised ANN and the SNN side by side, layer by layer.

Three results on the same inputs:
- float:     the user's original model in onnxruntime (float32; a QONNX file in the qonnx executor),
- quantised: the integer reference of the quantised ANN (neurodeploy/sim/reference.py),
- SNN:       the fixed-point spiking simulation (neurodeploy/sim/engine.py).
Quantisation error (float vs quantised) and conversion error (quantised vs SNN) are kept
apart: the first is the price of the target's formats, the second must be zero for an
exact scheme.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NeurodeployError
from ..frontends.onnx import load_onnx, runtime
from ..ir import float_graph as fg
from ..ir.spiking import SpikingGraph
from ..passes import run_passes
from ..registry import get_scheme
from ..sim import engine
from ..ir.float_eval import evaluate, quant_codes
from ..sim.reference import reference


def _ort_errors() -> tuple:
    """The exception classes onnxruntime raises (they derive from Exception only)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as st
    return tuple(c for c in vars(st).values() if isinstance(c, type) and issubclass(c, Exception)
                 and c.__module__ == st.__name__)


def run_onnx(model_path: str | Path, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The ONNX model's (first) output on x, (N, outputs) float32, run as written (runtime.session).
    A file onnxruntime cannot load or run (garbage, another input shape) is one NeurodeployError,
    never onnxruntime's own message.  A QONNX file (custom `Quant` ops, which onnxruntime cannot
    run) is run by the qonnx package's executor."""
    from ..frontends.onnx import qonnx
    if qonnx.is_qonnx_file(model_path):
        return qonnx.run_qonnx(model_path, x).reshape(len(x), -1)
    try:
        sess = runtime.session(str(model_path))
        _check_onnx_input(sess, x, model_path)
        (out,) = runtime.run(sess, x, None, batch_size)[:1]
    except _ort_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NeurodeployError(f"onnxruntime cannot run the model ({first[:200]})", str(model_path),
                               "pass the ONNX model the network was compiled from") from None
    return out.reshape(len(x), -1)


def _check_onnx_input(sess, x: np.ndarray, model_path) -> None:
    """One input, shaped like the samples (symbolic dimensions match anything)."""
    inputs = sess.get_inputs()
    want = tuple(inputs[0].shape[1:])
    if len(inputs) != 1 or len(want) != x.ndim - 1 or any(isinstance(d, int) and d != n
                                                            for d, n in zip(want, x.shape[1:])):
        raise NeurodeployError(f"the model takes {len(inputs)} input(s) shaped {tuple(inputs[0].shape)}, not the "
                               f"compiled network's (N, {', '.join(map(str, x.shape[1:]))})", str(model_path),
                               "pass the ONNX model the network was compiled from")


def _float_codes(float_graph: fg.FloatGraph, net: SpikingGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Codes the float model's quantisers produce (before integer quantisation)."""
    want = {}
    for layer in net.neuron_layers():
        if layer.is_readout or layer.float_node not in float_graph.g:
            continue
        op = float_graph.op(layer.float_node)
        (src,) = float_graph.inputs(layer.float_node)
        levels = getattr(layer.neuron, "code_max", None)
        if not isinstance(op, fg.QuantAct) or op.levels != levels:
            # the scheme re-quantised this activation (rate: a ReLU or QCFS balanced to T levels);
            # the float counterpart is that quantiser on the float pre-activation
            step = np.asarray(layer.value_step, dtype=np.float64)
            offset = getattr(layer.neuron, "float_code_offset", 0.5)   # 0.5 = rounds, 0 = floors
            op = fg.QuantAct(in_scale=1.0 / step, offset=np.asarray(offset), levels=levels, out_step=step)
        want[layer.name] = (src, op)
    vals = evaluate(float_graph, x, keep={s for s, _ in want.values()})
    import torch
    return {name: quant_codes(op, torch.as_tensor(vals[src])).numpy().astype(np.int64)
            for name, (src, op) in want.items()}


def verify(net: SpikingGraph, model_path: str | Path, x: np.ndarray, y: np.ndarray,
           batch_size: int = 256, device: str = "cpu", progress: bool = False, *,
           float_logits: np.ndarray | None = None, float_graph: fg.FloatGraph | None = None,
           workers: int = 1, ray_address: str | None = None) -> dict:
    """Float model vs quantised ANN vs SNN on (x, y).

    The float model is the ONNX file `model_path`, run in onnxruntime; a caller with another
    kind of model (neurodeploy.api: PyTorch) passes its outputs on x as `float_logits` and its
    front end's graph as `float_graph`, and `model_path` is then only the label in the report.
    workers > 1 runs the batches as Ray tasks (`neurodeploy.workers`; the same result).
    """
    from ..workers import check_workers, map_batches
    check_workers(workers, ray_address, device)
    scheme = get_scheme(net.scheme)
    if not scheme.ann_reference:
        raise NeurodeployError(f"a {net.scheme} network is a trained SNN with no quantised ANN to verify against",
                               "verify", "compare float-SNN and fixed-point-SNN accuracy with "
                               "neurodeploy.reports.verify.compare_accuracy (or neurodeploy.verify)")
    if float_logits is None:
        float_logits = run_onnx(model_path, x, batch_size)
    if float_logits.shape[1] != int(np.prod(net.output.shape)):
        raise NeurodeployError(f"the model has {float_logits.shape[1]} outputs but the compiled network "
                               f"{int(np.prod(net.output.shape))}", str(model_path),
                               "verify against the model the directory was compiled from")
    float_graph = run_passes(load_onnx(model_path, prove=False) if float_graph is None else float_graph, scheme.passes)
    lossy = net.meta.get("lossy")
    ref_net, names, _ = _references(net)
    batches = map_batches(_prepare_batches, _verify_batch, (net, device, float_graph), x, batch_size,
                          workers=workers, ray_address=ray_address, progress=progress, desc="verify")
    conv_mm = {name: sum(b["conversion"][name] for b in batches) for name in names}
    quant_mm = {name: sum(b["quantisation"][name] for b in batches) for name in names[1:]}   # the input encoder has no float counterpart
    elements = {name: sum(b["elements"][name] for b in batches) for name in names}
    spikes = {name: sum(b["spikes"][name] for b in batches) for name in names}
    readout_mm = sum(b["readout"] for b in batches)
    overflows: dict = {}
    for b in batches:
        for name, c in b["overflows"].items():
            overflows[name] = overflows.get(name, 0) + c
    snn_out, q_out = [b["snn_out"] for b in batches], [b["q_out"] for b in batches]
    snn_out, q_out = np.concatenate(snn_out), np.concatenate(q_out)
    max_logit_diff = float(np.max(np.abs(q_out.astype(np.float64) - float_logits)))
    p_float, p_q, p_snn = float_logits.argmax(1), q_out.argmax(1), snn_out.argmax(1)
    layer_mm = {**conv_mm, net.output.name: readout_mm}
    elements[net.output.name] = int(np.prod(net.output.shape)) * len(x)
    verdict = scheme.verdict(net, layer_mm, elements, lossy)
    layers = []
    for name in names:
        layers.append({"layer": name, "elements": elements[name], "conversion_mismatches": conv_mm[name],
                       "quantisation_mismatches": quant_mm.get(name),
                       "spikes": spikes[name], "spikes_per_sample": spikes[name] / len(x)})
    layers.append({"layer": net.output.name, "elements": elements[net.output.name],
                   "conversion_mismatches": readout_mm, "quantisation_mismatches": None,
                   "spikes": 0, "spikes_per_sample": 0.0})
    return {
        "model": str(model_path), "scheme": net.scheme, "target": net.target, "samples": int(len(x)),
        "accuracy": {"float": float(np.mean(p_float == y)), "quantised_ann": float(np.mean(p_q == y)),
                     "snn": float(np.mean(p_snn == y))},
        "agreement": {"snn_vs_float": float(np.mean(p_snn == p_float)),
                      "snn_vs_quantised_ann": float(np.mean(p_snn == p_q))},
        "quantisation_error": {"max_abs_logit_diff_float_vs_quantised": max_logit_diff},
        "layers": layers,
        "latency_steps": net.meta.get("latency_steps"),
        "guarantee": scheme.guarantee,
        "verdict": verdict.to_dict(),
        "guarantee_holds": verdict.holds,
        "exact_scheme": scheme.exact,
        "error_free": verdict.word == "EXACT",
        "lossy": lossy,
        "state_overflows": {k: v for k, v in overflows.items() if v},
    }


def _references(net: SpikingGraph) -> tuple[SpikingGraph, list[str], dict]:
    """(the network whose integer reference the SNN is compared with, the layers compared, the bits
    a --lossy network dropped per layer): a --lossy network is compared with the exact quantised ANN
    it was truncated from."""
    lossy = net.meta.get("lossy")
    ref_net = SpikingGraph(net.scheme, net.target, net.meta["reference_layers"], {}) if lossy else net
    names = [net.input.name] + [l.name for l in net.neuron_layers() if not l.is_readout]
    return ref_net, names, lossy["dropped_bits"] if lossy else {}


def _prepare_batches(context: tuple) -> tuple:
    net, device, float_graph = context
    return (engine.prepare(net, device), float_graph, *_references(net))


def _verify_batch(state: tuple, xb: np.ndarray) -> dict:
    """One batch's mismatch counts (conversion: SNN vs integer reference; quantisation: float model's
    codes vs integer reference), spikes, overflows and outputs (SNN, quantised ANN)."""
    prep, float_graph, ref_net, names, dropped = state
    snn = engine.run_batch(prep, xb, record_codes=True)
    ref_codes, ref_u = reference(ref_net, xb)
    fcodes = _float_codes(float_graph, ref_net, xb)
    r = {"conversion": {}, "quantisation": {}, "elements": {}, "spikes": {},
         "overflows": {name: int(c) for name, c in snn.overflows.items()}}
    for name in names:
        s = snn.codes[name].cpu().numpy() << dropped.get(name, 0)
        r["conversion"][name] = int(np.count_nonzero(s != ref_codes[name]))
        r["elements"][name] = int(s.size)
        r["spikes"][name] = snn.spikes[name]
        r["quantisation"][name] = int(np.count_nonzero(fcodes[name] != ref_codes[name])) if name in fcodes else 0
    u = snn.output_state.cpu().numpy().reshape(len(xb), -1)
    ref_u = ref_u.reshape(len(xb), -1)
    r["readout"] = int(np.count_nonzero(u != ref_u))
    r["snn_out"] = snn.output.cpu().numpy()
    r["q_out"] = (ref_u.astype(np.float64) * float(ref_net.output.neuron.output_scale)).astype(np.float32)
    return r


def verify_text(r: dict) -> str:
    a, g = r["accuracy"], r["agreement"]
    from ..frontends.onnx.qonnx import is_qonnx_file
    runner = "onnxruntime" if str(r["model"]).lower().endswith(".onnx") else "PyTorch"
    if runner == "onnxruntime" and is_qonnx_file(r["model"]):
        runner = "qonnx"
    lines = [
        f"verify: {r['model']}  scheme={r['scheme']}  target={r['target']}  samples={r['samples']}",
        f"  accuracy   float ({runner}) {a['float']*100:6.2f}%   quantised ANN {a['quantised_ann']*100:6.2f}%"
        f"   SNN {a['snn']*100:6.2f}%",
        f"  agreement  SNN vs float {g['snn_vs_float']*100:6.2f}%   SNN vs quantised ANN "
        f"{g['snn_vs_quantised_ann']*100:6.2f}%",
        f"  quantisation error (float vs quantised ANN): max |logit diff| "
        f"{r['quantisation_error']['max_abs_logit_diff_float_vs_quantised']:.4g}",
        "",
        f"  {'layer':<28}{'activations':>13}{'conversion':>12}{'quantisation':>14}{'spikes/sample':>15}",
        f"  {'':<28}{'':>13}{'mismatches':>12}{'mismatches':>14}{'':>15}",
    ]
    for l in r["layers"]:
        qm = "-" if l["quantisation_mismatches"] is None else str(l["quantisation_mismatches"])
        lines.append(f"  {l['layer']:<28}{l['elements']:>13}{l['conversion_mismatches']:>12}{qm:>14}"
                     f"{l['spikes_per_sample']:>15.1f}")
    lines += ["", f"  guarantee: {r['guarantee']}", f"  {verdict_line(r)}"]
    if r.get("state_overflows"):
        lines.append("  STATE OVERFLOW (the calibrated state bound was exceeded; the register wrapped as on the chip): "
                     + ", ".join(f"{k} {v} neurons" for k, v in r["state_overflows"].items())
                     + " -- recompile with --state-bound static or more --calibration data")
    return "\n".join(lines)


def verdict_line(r: dict) -> str:
    """'EXACT: ...' / 'NOT EXACT: ...' / 'APPROXIMATE: ...' and whether the guarantee holds."""
    v = r["verdict"]
    if v["word"] == "APPROXIMATE":       # its reason says the scheme promises no equality
        return f"{v['word']}: {v['reason']}"
    return f"{v['word']}: {v['reason']} (guarantee {'holds' if v['holds'] else 'does NOT hold'})"


def compare_accuracy(model, graph: SpikingGraph, x: np.ndarray, y: np.ndarray | None = None,
                     timesteps: int | None = None, batch_size: int = 256) -> dict:
    """Float SNN vs the fixed-point SNN (our simulator) on (x, y).

    For any trained-SNN scheme (cuba, reverb): the input encoder's neuron carries `timesteps`
    and `sim.engine` dispatches the graph to its simulator.  `model` is the time-first
    nn.Module (run by `train.predict`), for reverb the `.pt2` file `nn.export_program`
    wrote (its float graph run for T steps by `schemes.reverb.float_model.run`), or a model the
    scheme's own front end reads (cuba: the NIR graph, a .nir path or a nir.NIRGraph, the network
    was compiled from, stepped under the conventions it was compiled with).
    Returns {"float_accuracy", "fixed_accuracy", "agreement", "float_out", "fixed_out"}
    (accuracies None without labels).
    """
    from ..train.fit import predict
    t = timesteps or int(graph.input.neuron.timesteps)
    if isinstance(model, (str, Path)) or get_scheme(graph.scheme).model_front_end(model) is not None:
        model = Path(model) if isinstance(model, str) else model
        f = float_snn_from_file(model, graph, np.asarray(x, dtype=np.float32), t, batch_size)
    else:
        f = predict(model, np.asarray(x, dtype=np.float32), t, batch_size=batch_size)
    q = engine.simulate(graph, np.asarray(x, dtype=np.float32), batch_size=batch_size)[0]
    pf, pq = f.argmax(1), q.argmax(1)
    out = {"float_out": f, "fixed_out": q, "agreement": float((pf == pq).mean())}
    out["float_accuracy"] = None if y is None else float((pf == np.asarray(y)).mean())
    out["fixed_accuracy"] = None if y is None else float((pq == np.asarray(y)).mean())
    return out


def float_snn_from_file(path, graph: SpikingGraph, x: np.ndarray, t: int, batch_size: int) -> np.ndarray:
    """The float SNN's outputs from a saved model file (or an in-memory model a scheme's own front
    end reads), where the network's scheme can run one (`Scheme.float_snn_outputs`: reverb from the
    per-step .pt2 program, cuba from the NIR graph)."""
    return get_scheme(graph.scheme).float_snn_outputs(path, graph, x, t, batch_size)


def snn_verify_text(r: dict) -> str:
    """The trained-SNN result of `neurodeploy.api.verify` (cuba, reverb) in words."""
    a, g = r["accuracy"], r["agreement"]
    return "\n".join([
        f"verify: {r.get('model', '')}  scheme={r['scheme']}  samples={r['samples']}",
        f"  accuracy   float SNN {a['float_snn']*100:6.2f}%   fixed-point SNN {a['fixed_point_snn']*100:6.2f}%",
        f"  agreement  fixed point vs float SNN {g['fixed_vs_float_snn']*100:6.2f}%",
        f"  guarantee: {r['guarantee']}", f"  {verdict_line(r)}"])


def snn_verdict(scheme, agreement: float, samples: int):
    """The verdict of a trained-SNN comparison (cuba, reverb): no quantised ANN, no per-layer counts;
    the scheme promises no equality with the float SNN, so the agreement is what there is to say."""
    from ..schemes.base import Verdict
    return Verdict("APPROXIMATE", True, f"fixed-point and float SNN predictions agree on {100 * agreement:.2f}% "
                                        f"of the {samples} samples; the {scheme.name} scheme promises no equality")
