"""The `neurodeploy` command line: thin; parses, calls the API, prints.

Every user error is a NeurodeployError: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

import numpy as np

from . import __version__
from .errors import NeurodeployError

EPILOG = """\
typical use:
  neurodeploy compile models/digits_qcfs.onnx --target loihi2 --scheme bitplane -o out/
  neurodeploy simulate out/ --input x.npy --output logits.npy
  neurodeploy verify out/ --model models/digits_qcfs.onnx --input x.npy --labels y.npy
"""


def _add_compile(sub):
    p = sub.add_parser(
        "compile", help="compile an ONNX, PyTorch (.pt2) or NIR (.nir) model into a spiking network directory",
        description="Compile a trained model (ONNX, a PyTorch program saved with torch.export.save, or a NIR "
                    "graph of a trained SNN) "
                    "into a spiking network for a target chip. "
                    "The output directory holds ir.json + params.npz (the spiking IR, versioned) and "
                    "summary.md; it is written atomically (temp dir + rename).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the trained model: .onnx, .pt2 written by torch.export.save, or a .nir graph "
                                 "(snnTorch, Norse, sinabs, SpikingJelly ...: --scheme cuba with the --nir-* options)")
    p.add_argument("--target", default="loihi2",
                   help="hardware description in targets/ (loihi2, cpu) or a path to a .toml (default: loihi2)")
    p.add_argument("--scheme",
                   help="coding scheme: bitplane = error-free conversion of a QCFS-trained ANN (default); "
                        "rate = integrate-and-fire rate coding over --timesteps steps (default 32); "
                        "cuba = a trained LIF SNN on Loihi's CUBA LIF (the default for .nir graphs)")
    p.add_argument("-o", "--output", required=True, help="output directory (created or replaced)")
    p.add_argument("--calibration", metavar="X.npy",
                   help="float32 samples shaped like the input, batch first; sets the input quantiser's "
                        "range when the model does not start with one")
    p.add_argument("--timesteps", type=int,
                   help="time steps per layer where the scheme allows a choice; bitplane derives "
                        "T = ceil(log2(Q+1)) from the QCFS levels Q and accepts fewer only with --lossy")
    p.add_argument("--lossy", action="store_true",
                   help="allow --timesteps below what exactness needs (layers emit only their top bits, "
                        "rounded); verify then reports the mismatches and exits 1")
    p.add_argument("--reset", choices=["subtract", "zero"], default="subtract",
                   help="rate: reset by subtracting the threshold (keeps the residue; custom neuron on "
                        "Loihi 2) or to zero (Loihi's stock LIF; loses the residue)")
    p.add_argument("--percentile", type=float, default=99.9,
                   help="rate: threshold balancing sets each ReLU's λ to this percentile of its "
                        "calibration inputs (default 99.9)")
    p.add_argument("--coding-steps", type=int,
                   help="sws: coding steps Tc (ternary digits per value, activations get 2^Tc-1 levels; "
                        "default --timesteps or 8)")
    p.add_argument("--silent-steps", type=int,
                   help="sws: silent steps Ts of every TSA layer (default 2; latency Tc + Ts*layers)")
    p.add_argument("--beta", type=int, choices=[2, 3], default=2,
                   help="sws: amplification factor of the TSA neurons (2 = a shift, default; 3 = shift + add)")
    p.add_argument("--state-bound", choices=["static", "calibrated"],
                   help="sws: size the threshold unit D against the target's state width from the worst case "
                        "(static: no input can overflow, coarse D) or from the membrane peak over the "
                        "--calibration samples times --state-margin (calibrated: finer D, closer to the "
                        "quantised model; inputs far outside the calibration data can overflow, which "
                        "the simulator counts). Default: calibrated when --calibration is given, else static")
    p.add_argument("--state-margin", type=float, default=4.0,
                   help="sws, calibrated state bound: headroom factor over the calibration peak (default 4)")
    p.add_argument("--payload-bits", type=int, default=16,
                   help="reverb: bits of a graded spike's payload, 1..24 (default 16; Loihi 2 carries up to 24)")
    p.add_argument("--input-bits", type=int, default=8,
                   help="width of the input quantiser inserted when the model has none (default 8)")
    p.add_argument("--chips", type=int, default=1,
                   help="chips available (default 1); compile fails, naming the largest layers, when the "
                        "network needs more cores than these chips have")
    p.add_argument("--json", action="store_true", help="print the compile summary as JSON")
    _add_nir_options(p)


def _add_nir_options(p):
    """How a .nir graph's producer stepped it: NIR records none of it (frontends/nir/conventions.py)."""
    from .frontends.nir.conventions import CURRENT_INPUTS, DECAYS, FIRE_ON, GAINS, PRESETS, RESETS
    g = p.add_argument_group("NIR graphs (.nir)", "NIR leaves the time step, discretisation, reset and firing rule "
                             "to its producer: name the producer, or give each convention")
    g.add_argument("--nir-from", choices=sorted(PRESETS),
                   help="the exporter's conventions: snntorch (dt 1e-4), norse (dt 1e-6: Norse 1.1 writes "
                        "tau = dt/tau_inv), sinabs (dt 1, exp decay), spikingjelly (dt 1e-4); spec = NIR's own "
                        "reading (default; needs --nir-dt)")
    g.add_argument("--nir-dt", type=float, help="time step in the graph's time unit (overrides --nir-from)")
    g.add_argument("--nir-reset", choices=RESETS,
                   help="how the network was trained to reset (NIR does not record it; snnTorch and sinabs "
                        "need it): zero, or subtract (refused: Loihi 2's CUBA LIF resets to 0)")
    g.add_argument("--nir-decay", choices=DECAYS, help="euler: 1 - dt/tau; exp: exp(-dt/tau)")
    g.add_argument("--nir-input-gain", choices=GAINS,
                   help="ode: r (1 - decay) as in the ODE; r: r alone (sinabs norm_input=False)")
    g.add_argument("--nir-integrator-gain", choices=GAINS, help="IF / I input gain: ode: r dt; r: r")
    g.add_argument("--nir-current-input", choices=CURRENT_INPUTS,
                   help="CubaLIF current input: ode: w_in (1 - alpha); jump: w_in (Norse)")
    g.add_argument("--nir-fire-on", choices=FIRE_ON, help="the trained firing rule: v > threshold or v >= threshold")


def _nir_conventions(args):
    from .frontends.nir import conventions
    return conventions(args.nir_from, dt=args.nir_dt, reset=args.nir_reset, decay=args.nir_decay,
                       input_gain=args.nir_input_gain, integrator_gain=args.nir_integrator_gain,
                       current_input=args.nir_current_input, fire_on=args.nir_fire_on)


def _add_simulate(sub):
    p = sub.add_parser(
        "simulate", help="run a compiled network on inputs with the bit-accurate simulator",
        description="Simulate a compiled network on a CPU (or --device cuda) in exact fixed point, "
                    "batch by batch: the input .npy is memory-mapped and read one batch at a time, so "
                    "memory is bounded by --batch-size (plus the (N, outputs) result), not by the number "
                    "of samples. "
                    "Writes the readout layer's values as float32 (N, outputs) in the ANN's units.")
    p.add_argument("compiled", help="directory written by `neurodeploy compile`")
    p.add_argument("--input", required=True, metavar="X.npy", help="float32 inputs (N, C, H, W) or (N, F)")
    p.add_argument("--output", required=True, metavar="Y.npy", help="where to write the outputs")
    p.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--engine", choices=["neurodeploy", "lava"], default="neurodeploy",
                   help="neurodeploy = our vectorised simulator (default); lava = Intel Lava's own CPU "
                        "simulation, Loihi2SimCfg(select_tag='fixed_pt') of the emitted processes "
                        "(bitplane, rate, sws and reverb networks; slow: a few samples per second)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (spikes per layer, timing)")


def _add_verify(sub):
    p = sub.add_parser(
        "verify", help="compare float model, quantised ANN and SNN layer by layer",
        description="Run the original model (float: onnxruntime for .onnx, PyTorch for .pt2), the integer "
                    "reference of the quantised ANN, and the SNN simulation on the same inputs; print accuracies, "
                    "prediction agreement and per-layer mismatches. Exit status 0 only when the "
                    "scheme's guarantee holds (bitplane: zero mismatches on every layer), 1 otherwise.")
    p.add_argument("compiled", help="directory written by `neurodeploy compile`")
    p.add_argument("--model", required=True,
                   help="the model file (.onnx or .pt2) the directory was compiled from")
    p.add_argument("--input", required=True, metavar="X.npy", help="float32 inputs, batch first")
    p.add_argument("--labels", required=True, metavar="Y.npy", help="integer labels (N,)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurodeploy", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compile trained ANNs (ONNX) to spiking networks for Loihi 2 and simulate them "
                    "bit for bit on a CPU.")
    parser.add_argument("--version", action="version", version=f"neurodeploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_compile(sub)
    _add_simulate(sub)
    _add_verify(sub)
    for module in EXTRA_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def cmd_compile(args) -> int:
    from .arrays import load_npy
    from .compiler import compile_model, save_artifact
    from .reports.summary import layer_rows, summary_markdown
    from .schemes import CompileOptions

    calib = load_npy(args.calibration, "calibration samples") if args.calibration else None
    if args.input_bits < 1 or args.input_bits > 16:
        raise NeurodeployError(f"--input-bits {args.input_bits} out of range", "--input-bits", "use 1..16")
    t0 = time.perf_counter()
    scheme = args.scheme or ("cuba" if str(args.model).lower().endswith(".nir") else "bitplane")
    net = compile_model(args.model, args.target, scheme,
                        CompileOptions(calibration=calib, timesteps=args.timesteps, input_bits=args.input_bits,
                                       lossy=args.lossy, reset=args.reset, percentile=args.percentile,
                                       coding_steps=args.coding_steps, silent_steps=args.silent_steps,
                                       chips=args.chips, payload_bits=args.payload_bits, beta=args.beta,
                                       state_bound=args.state_bound, state_margin=args.state_margin,
                                       nir=_nir_conventions(args)))
    md = summary_markdown(net)
    save_artifact(net, args.output, {"summary.md": md})
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"output": args.output, "scheme": net.scheme, "target": net.target,
                          "latency_steps": net.meta["latency_steps"], "seconds": seconds,
                          "layers": layer_rows(net)}, indent=1))
    else:
        print(md)
        print(f"wrote {args.output}/ in {seconds:.2f} s")
    return 0


def cmd_simulate(args) -> int:
    from .arrays import check_inputs, load_npy
    from .ir.serialize import load
    from .sim.engine import simulate

    net = load(args.compiled)
    x = check_inputs(load_npy(args.input, "inputs", mmap=True), net.input.shape, args.input)
    t0 = time.perf_counter()
    if args.engine == "lava":
        out, spikes = _simulate_lava(net, np.array(x))   # a writable copy of the (memory-mapped) samples
    else:
        out, spikes = simulate(net, x, args.batch_size, args.device, progress=True)
    seconds = time.perf_counter() - t0
    _save_npy_atomic(args.output, out)
    summary = {"samples": int(len(x)), "output": args.output, "seconds": seconds,
               "samples_per_second": len(x) / seconds if seconds else None,
               "spikes_per_sample": {k: v / len(x) for k, v in spikes.items()}}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"simulated {len(x)} samples in {seconds:.3f} s ({summary['samples_per_second']:.0f} samples/s); "
              f"wrote {args.output} {tuple(out.shape)} float32")
    return 0


def _simulate_lava(net, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run the emitted Lava processes in Loihi2SimCfg(select_tag="fixed_pt")."""
    if net.scheme == "bitplane":
        from .backends.lava import run_lava
        res = run_lava(net, x)
        return res.outputs, {name: int(p.sum()) for name, p in res.planes.items()}
    if net.scheme == "rate":
        from .backends.lava.rate_lava import run_lava as run_rate_lava
        res = run_rate_lava(net, x)
        return res.output, {name: int(c.sum()) for name, c in res.counts.items()}
    if net.scheme == "sws":
        from .backends.lava.sws_lava import run_lava as run_sws_lava
        res = run_sws_lava(net, x, record_digits=False)     # codes from the neurons, no spike sinks
        return res.outputs, res.spikes
    if net.scheme == "reverb":
        from .backends.lava.reverb_lava import run_lava as run_reverb_lava
        res = run_reverb_lava(net, x)
        return res.output, {name: int((p != 0).sum()) for name, p in res.trains.items()}
    raise NeurodeployError(f"--engine lava runs bitplane, rate, sws and reverb networks, not {net.scheme}", "--engine",
                           "for cuba/sdnn use their NetX export (neurodeploy export DIR --format netx) "
                           "or the Python API (neurodeploy.sim.cuba.run_lava)")


def _save_npy_atomic(path: str, arr: np.ndarray) -> None:
    from .fsutil import atomic_file
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def cmd_verify(args) -> int:
    from .arrays import check_inputs, check_labels, load_npy
    from .ir.serialize import load
    from .api import verify               # .onnx: reports.verify.verify; .pt2: the float model in PyTorch
    from .reports.verify import snn_verify_text, verify_text

    net = load(args.compiled)
    x = check_inputs(load_npy(args.input, "inputs", mmap=True), net.input.shape, args.input)
    y = check_labels(load_npy(args.labels, "labels"), len(x), args.labels)
    result = verify(net, args.model, x, y, args.batch_size, args.device, progress=True)
    text = snn_verify_text if "fixed_point_snn" in result["accuracy"] else verify_text
    print(json.dumps(result, indent=1) if args.json else text(result))
    return 0 if result["guarantee_holds"] else 1


COMMANDS = {"compile": cmd_compile, "simulate": cmd_simulate, "verify": cmd_verify}
# Sub-commands that live beside their stage: each module has register(subparsers), which adds
# a parser whose defaults carry func=<callable(args) -> exit status>.
EXTRA_COMMANDS: list[str] = ["neurodeploy.reports.report_cli", "neurodeploy.reports.compare",
                              "neurodeploy.backends.export_cli"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        func = COMMANDS.get(args.command) or args.func
        return func(args)
    except NeurodeployError as exc:
        print(f"neurodeploy {args.command}: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("neurodeploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
