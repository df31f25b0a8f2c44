"""The `neurodeploy` command line: thin; parses, calls the API, prints.

Every user error is a NeurodeployError: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time

from . import __version__
from . import signals
from .errors import NeurodeployError

EPILOG = """\
typical use:
  neurodeploy compile models/digits_qcfs.onnx --target loihi2 --scheme bitplane -o out/
  neurodeploy simulate out/ --input x.npy --output logits.npy
  neurodeploy verify out/ --model models/digits_qcfs.onnx --input x.npy --labels y.npy
"""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit status 2, like every other user
    error (`neurodeploy compile: error: ...`); --help still prints the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _scheme_name(text: str) -> str:
    """--scheme's type: a registered scheme's name (argparse then also checks `choices`)."""
    from .registry import scheme_names
    if text not in scheme_names():
        raise argparse.ArgumentTypeError(f"unknown scheme '{text}' (available schemes: "
                                         f"{', '.join(sorted(scheme_names()))})")
    return text


def _add_compile(sub):
    from .registry import DEFAULT_SCHEME
    from .registry import all_schemes
    from .schemes.base import flag
    schemes = all_schemes()
    own = [(s.name, fe) for s in schemes for fe in s.model_front_ends()]    # formats a scheme's own front end reads
    own_formats = "".join(f", a {fe.DESCRIPTION}" for _, fe in own)
    p = sub.add_parser(
        "compile", help="compile a trained model (.onnx, .pt2" + "".join(f", {x}" for _, fe in own for x in fe.SUFFIXES)
                        + ", or a Lava-DL NetX .net) into a spiking network directory",
        description="Compile a trained model (ONNX, a PyTorch program saved with torch.export.save"
                    f"{own_formats} of a trained SNN) into a spiking network for a target chip, or import a Lava-DL "
                    "NetX file (a spiking network already: read as it is, no quantisation). "
                    "The output directory holds ir.json + params.npz (the spiking IR, versioned), "
                    "summary.md and neurodeploy-manifest.json; it is written atomically (temp dir + rename). "
                    "The options after --scheme are each scheme's own (marked [scheme]); an option the "
                    "chosen scheme does not have is refused; those marked [NetX files] apply to NetX files "
                    "only: the arguments netx.hdf5.Network takes besides the file.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the trained model: .onnx, .pt2 written by torch.export.save"
                                 + "".join(f", or a {fe.DESCRIPTION} (--scheme {name} with its options "
                                           + ", ".join(flag(n) for n in fe.OPTIONS[:2]) + " ...)" for name, fe in own)
                                 + "; or a Lava-DL NetX file (.net), imported as it is (cuba/sdnn, no quantisation)")
    p.add_argument("--target", default="loihi2",
                   help="hardware description in targets/ (loihi2, cpu) or a path to a .toml (default: loihi2)")
    p.add_argument("--scheme", type=_scheme_name, choices=[s.name for s in schemes],
                   help="coding scheme: " + "; ".join(f"{s.name} = {s.title}" for s in schemes)
                        + f" (default: {DEFAULT_SCHEME}; a NetX file's own" + "".join(f"; {name} for a {fe.DESCRIPTION}" for name, fe in own)
                        + ")")
    p.add_argument("-o", "--output", required=True,
                   help="output directory: created, or replaced when it is empty or an unchanged earlier "
                        "neurodeploy output (its neurodeploy-manifest.json lists every file); any other "
                        "folder is refused and left untouched")
    add_option_flags(p, schemes, front_end_options())
    p.add_argument("--json", action="store_true", help="print the compile summary as JSON")


def front_end_options() -> dict:
    """Options of the front ends that read spiking networks as they are (title -> option fields):
    a Lava-DL NetX file's."""
    from .frontends.netx.options import TITLE, netx_fields
    return {TITLE: netx_fields()}


def add_option_flags(p, schemes: list, extra: dict | None = None) -> None:
    """One flag per option field of the schemes' options classes (`schemes.base.option` metadata)
    and of `extra` (title -> fields of a front end's options); a flag several of them share is
    added once.  Defaults are left out (argparse.SUPPRESS), so that `given_options` sees exactly
    the flags the user gave and the scheme (or front end) can refuse foreign ones."""
    from .schemes.base import CommonOptions, flag, option_fields
    common = {f.name for f in option_fields(CommonOptions)}
    owners: dict[str, list] = {}
    fields: dict = {}
    timesteps_help = [f"{s.name}: {s.timesteps_help}" for s in schemes if s.timesteps_help]
    for s in schemes:
        for f in option_fields(s.Options):
            owners.setdefault(f.name, []).append(s.name)
            fields.setdefault(f.name, f)
    for title, extra_fields in (extra or {}).items():
        for f in extra_fields:
            owners.setdefault(f.name, []).append(title)
            fields.setdefault(f.name, f)
            if f.name == "timesteps":
                timesteps_help.append(f"{title}: {f.metadata['help']}")
    for name, f in fields.items():
        meta = f.metadata
        help_text = meta.get("help", "")
        scheme_owned = any(o not in (extra or {}) for o in owners[name])    # else only a front end's (compare)
        if name == "timesteps" and scheme_owned:
            help_text += ": " + "; ".join(timesteps_help)
        elif name not in common or not scheme_owned:
            help_text = f"[{', '.join(owners[name])}] {help_text}"
        kw = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if meta.get("type") is None and isinstance(f.default, bool):
            kw["action"] = "store_true"
        else:
            kw["type"] = str if meta.get("cli") == "npy" else meta.get("type")
            if meta.get("choices") is not None:
                kw["choices"] = list(meta["choices"])
            if meta.get("metavar"):
                kw["metavar"] = meta["metavar"]
        p.add_argument(flag(name), **kw)


def given_options(args) -> dict:
    """The scheme (and front-end) options the user gave on the command line (name -> value),
    calibration loaded."""
    from .arrays import load_npy
    from .registry import all_schemes
    from .schemes.base import option_fields
    names = {f.name: f for fields in front_end_options().values() for f in fields}
    names.update({f.name: f for s in all_schemes() for f in option_fields(s.Options)})
    given = {n: getattr(args, n) for n in names if hasattr(args, n)}
    for n, value in list(given.items()):
        if names[n].metadata.get("cli") == "npy":
            given[n] = load_npy(value, f"{n} samples")
    return given


def option_paths(args) -> list[str]:
    """The files given to scheme options (e.g. --calibration X.npy): inputs an output must not replace."""
    from .registry import all_schemes
    from .schemes.base import option_fields
    return [getattr(args, f.name) for s in all_schemes() for f in option_fields(s.Options)
            if f.metadata.get("cli") == "npy" and hasattr(args, f.name)]


def add_worker_flags(p, what: str = "batches") -> None:
    """--workers and --ray-address (`neurodeploy.workers`: Ray tasks, the serial run's bytes)."""
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help=f"run the {what} as Ray tasks on N workers: a local Ray instance of N CPUs started for "
                        "the run, or the cluster at --ray-address; the result is the same bytes "
                        "(default 1: one after the other in this process, no Ray)")
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="an existing Ray cluster (`ray start --head` prints its address) to run the --workers on")


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
    p.add_argument("-o", "--output", required=True, metavar="Y.npy",
                   help="where to write the outputs (.npy, atomically; never over an input)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--engine", choices=["neurodeploy", "planes", "steps", "lava"], default="neurodeploy",
                   help="neurodeploy = our vectorised simulator (default); planes = bitplane networks plane by "
                        "plane as the chip works; steps = rate, sdnn and cuba networks one lock-step time step at a "
                        "time, sws and reverb networks' neuron updates step by step in int64 (all bit-identical "
                        "to the "
                        "default, slower); lava = Intel Lava's own CPU "
                        "simulation, Loihi2SimCfg(select_tag='fixed_pt') of the emitted processes "
                        "(the schemes with Lava processes; slow: a few samples per second)")
    add_worker_flags(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary (spikes per layer, timing)")


def _add_verify(sub):
    p = sub.add_parser(
        "verify", help="compare float model, quantised ANN and SNN layer by layer",
        description="Run the original model (float: onnxruntime for .onnx, the qonnx executor for a QONNX .onnx, "
                    "PyTorch for .pt2), the integer "
                    "reference of the quantised ANN, and the SNN simulation on the same inputs; print accuracies, "
                    "prediction agreement, per-layer mismatches and the verdict those counts give: EXACT "
                    "(every count 0), NOT EXACT (the scheme promises equality and some count is not 0) or "
                    "APPROXIMATE (the scheme promises none). Exit status 0 only when the scheme's guarantee "
                    "holds (bitplane, sws, sdnn: zero mismatches on every layer), 1 otherwise.")
    p.add_argument("compiled", help="directory written by `neurodeploy compile`")
    p.add_argument("--model", required=True,
                   help="the model file (.onnx, .pt2 or .nir) the directory was compiled from; for a network "
                        "imported from a Lava-DL NetX file, that .net file: Lava runs it as the reference "
                        "(bit-exact, layer by layer; a few samples)")
    p.add_argument("--input", required=True, metavar="X.npy", help="float32 inputs, batch first")
    p.add_argument("--labels", metavar="Y.npy",
                   help="integer labels (N,), each 0..outputs-1; required except for a NetX model")
    p.add_argument("--batch-size", type=int, default=256, help="samples per batch (default 256)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--allow-other-model", action="store_true",
                   help="compare against a model other than the one compiled (its sha256 differs from the one "
                        "recorded at compile; refused without this flag), and say so in the result")
    add_worker_flags(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="neurodeploy", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compile trained ANNs (ONNX) to spiking networks for Loihi 2 and simulate them "
                    "bit for bit on a CPU.")
    parser.add_argument("--version", action="version", version=f"neurodeploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below; `neurodeploy COMMAND --help` explains its options")
    _add_compile(sub)
    _add_simulate(sub)
    _add_verify(sub)
    for module in EXTRA_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def cmd_compile(args) -> int:
    from .compiler import compile_model, save_artifact
    from .outputs import check_output_dir
    from .reports.summary import layer_rows, summary_markdown

    inputs = [args.model, args.target, *option_paths(args)]
    check_output_dir(args.output, inputs)          # before the work: a folder we may not replace stops here
    options = given_options(args)
    t0 = time.perf_counter()
    from .progress import COMPILE_STAGES, stage_bar
    with stage_bar(COMPILE_STAGES, "compile") as stage:
        net = compile_model(args.model, args.target, args.scheme, options, stage)
    md = summary_markdown(net)
    save_artifact(net, args.output, {"summary.md": md}, inputs)
    seconds = time.perf_counter() - t0
    if args.json:
        from .reports.deploy import loihi2
        chip = loihi2(net)
        print(json.dumps({"output": args.output, "scheme": net.scheme, "target": net.target,
                          "latency_steps": net.meta["latency_steps"], "seconds": seconds,
                          "loihi2": {k: chip[k] for k in ("stock_only", "statement", "route")},
                          "layers": layer_rows(net)}, indent=1))
    else:
        print(md)
        print(f"wrote {args.output.rstrip('/')}/ in {seconds:.2f} s")
    return 0


def cmd_simulate(args) -> int:
    import numpy as np

    from .arrays import check_inputs, load_npy, sample_shape
    from .ir.serialize import load
    from .outputs import check_output_file
    from .sim.core import check_batch_size, check_device
    from .sim.engine import simulate

    from .workers import check_workers
    check_batch_size(args.batch_size)
    check_device(args.device)
    check_workers(args.workers, args.ray_address, args.device)
    output = check_output_file(args.output, [args.compiled, args.input], "--output")
    net = load(args.compiled)
    x = check_inputs(load_npy(args.input, "inputs", mmap=True), sample_shape(net), args.input)
    t0 = time.perf_counter()
    if args.engine == "lava":
        if args.workers > 1:
            raise NeurodeployError("Lava runs its processes in this process", "--engine lava",
                                   "drop --workers (or use another --engine)")
        out, spikes = _simulate_lava(net, np.array(x))   # a writable copy of the (memory-mapped) samples
    else:
        out, spikes = simulate(net, x, args.batch_size, args.device, progress=True, engine=args.engine,
                               workers=args.workers, ray_address=args.ray_address)
    seconds = time.perf_counter() - t0
    _save_npy_atomic(output, out)
    summary = {"samples": int(len(x)), "output": args.output, "seconds": seconds,
               "samples_per_second": len(x) / seconds if seconds else None,
               "spikes_per_sample": {k: v / len(x) for k, v in spikes.items()}}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"simulated {len(x)} samples in {seconds:.3f} s ({summary['samples_per_second']:.3g} samples/s); "
              f"wrote {args.output} {tuple(out.shape)} float32")
    return 0


LAVA_CHUNKS = 10      # Lava runs per simulate --engine lava: the progress bar's steps (each builds its network)


def _simulate_lava(net, x):
    """Run the emitted Lava processes in Loihi2SimCfg(select_tag="fixed_pt"), in up to LAVA_CHUNKS
    runs of consecutive samples, so that a progress bar can follow them (every sample's result is
    its own: the runs give what one run over all samples gives)."""
    import numpy as np

    from .progress import progress_bar
    from .registry import all_schemes, get_scheme
    scheme = get_scheme(net.scheme)
    if not scheme.has_lava:
        runs = ", ".join(s.name for s in all_schemes() if s.has_lava)
        raise NeurodeployError(f"--engine lava runs {runs} networks, not {net.scheme}", "--engine",
                               scheme.no_lava_hint)
    chunk = max(1, -(-len(x) // LAVA_CHUNKS))
    outputs, spikes = [], {}
    with progress_bar(total=len(x), desc="simulate (Lava fixed_pt)", unit="sample") as bar:
        for start in range(0, len(x), chunk):
            out, counts = scheme.simulate_lava(net, x[start:start + chunk])
            outputs.append(np.asarray(out))
            for name, n in counts.items():
                spikes[name] = spikes.get(name, 0) + int(n)
            bar.update(len(x[start:start + chunk]))
    return np.concatenate(outputs), spikes


def _save_npy_atomic(path, arr) -> None:
    import numpy as np

    from .fsutil import atomic_file
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def cmd_verify(args) -> int:
    from .arrays import check_inputs, check_labels, load_npy, sample_shape
    from .ir.serialize import load
    from .api import verify               # .onnx: reports.verify.verify; .pt2: the float model in PyTorch
    from .reports.verify import snn_verify_text, verify_text

    net = load(args.compiled)
    x = check_inputs(load_npy(args.input, "inputs", mmap=True), sample_shape(net), args.input)
    y = None if args.labels is None else \
        check_labels(load_npy(args.labels, "labels"), len(x), args.labels, n_classes=output_count(net))
    result = verify(net, args.model, x, y, args.batch_size, args.device, progress=True,
                    allow_other_model=args.allow_other_model, workers=args.workers, ray_address=args.ray_address)
    text = snn_verify_text if "fixed_point_snn" in result["accuracy"] else verify_text
    if result.get("netx"):                # a network imported from NetX, verified against Lava's run of the file
        from .frontends.netx.verify import verify_text as text
    print(json.dumps(result, indent=1) if args.json else text(result))
    if result.get("model_is_compiled_one") is False:
        print(f"neurodeploy verify: note: {args.model} is not the model {args.compiled} was compiled from "
              "(--allow-other-model)", file=sys.stderr)
    return 0 if result["guarantee_holds"] else 1


def output_count(net) -> int:
    """The network's outputs (classes): labels must be below it."""
    return math.prod(int(d) for d in net.output.shape)


COMMANDS = {"compile": cmd_compile, "simulate": cmd_simulate, "verify": cmd_verify}
# Sub-commands that live beside their stage: each module has register(subparsers), which adds
# a parser whose defaults carry func=<callable(args) -> exit status>.
EXTRA_COMMANDS: list[str] = ["neurodeploy.reports.report_cli", "neurodeploy.reports.compare_cli",
                              "neurodeploy.backends.export_cli"]


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 1 verify's guarantee failed, 2 a user error,
    130 Ctrl-C, 143 SIGTERM).  Everything after the first line runs with SIGTERM handled like Ctrl-C,
    start-up (the imports of torch & co. in build_parser) included."""
    with signals.handled():
        command = "neurodeploy"
        try:
            args = build_parser().parse_args(argv)
            command = f"neurodeploy {args.command}"
            from .reproducible import PIN_ENV_VAR, pin_cpu_numerics
            if os.environ.get(PIN_ENV_VAR) == "1":      # the same float bits on any x86-64 CPU (tests set it)
                pin_cpu_numerics()
            func = COMMANDS.get(args.command) or args.func
            return func(args)
        except NeurodeployError as exc:
            print(f"{command}: error: {exc.one_line()}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt as exc:
            what = "terminated (SIGTERM)" if isinstance(exc, signals.Terminated) else "interrupted"
            print(f"{command}: {what} -- no partial output was written", file=sys.stderr)
            return signals.exit_status(exc)
        except BrokenPipeError:         # `neurodeploy ... | head`: the reader left; outputs are already written
            signals.silence_stdout()
            return signals.SIGPIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
