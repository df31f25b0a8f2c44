"""`neurodeploy compare MODEL --input X --labels Y -o DIR`: the command line of `reports.compare`.

Registered by neurodeploy/cli.py through EXTRA_COMMANDS; kept apart from `reports.compare` (which
imports the compiler, torch and matplotlib) so that building the parser, `--help` and `--version`
import nothing heavy.  The command calls `neurodeploy.compare` (api.py).
"""
from __future__ import annotations

import json

from ..errors import NeurodeployError
from ..registry import all_schemes


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compile, simulate and verify a model under several schemes; one table",
        description="Compile the model under each scheme (sweeping rate's T and, with --bitplane-lossy, "
                    "fewer bitplane steps), simulate the inputs, and print one table: scheme, parameters, "
                    "accuracy, Δ vs the float ANN, latency, energy per inference (45 nm CMOS model), synaptic "
                    "memory, cores. Writes each compiled network and compare.{md,json,html} to -o DIR.")
    p.add_argument("model", help="the ONNX model (or a Lava-DL NetX file: its own network, one row)")
    p.add_argument("--target", default="loihi2",
                   help="hardware description in targets/ (loihi2, cpu) or a path to a .toml (default: loihi2)")
    p.add_argument("--input", required=True, metavar="X.npy", help="float32 inputs, batch first")
    p.add_argument("--labels", required=True, metavar="Y.npy", help="integer labels (N,), each 0..outputs-1")
    p.add_argument("--schemes", default="bitplane,rate", help="comma-separated (default bitplane,rate)")
    for scheme in all_schemes():          # each scheme's own sweep, e.g. rate's T values
        if scheme.compare_sweep is not None:
            flag, help_text, default = scheme.compare_sweep
            p.add_argument(flag, dest=f"sweep_{scheme.name}", default=",".join(map(str, default)),
                           help=f"{help_text} (default {','.join(map(str, default)) or 'none'})")
    p.add_argument("--calibration", metavar="X.npy", help="samples for input range / ReLU thresholds")
    p.add_argument("-o", "--output", required=True,
                   help="output directory: created, or replaced when it is empty or an unchanged earlier "
                        "neurodeploy output (see `neurodeploy compile --help`); written whole, atomically")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    from ..cli import add_option_flags, add_worker_flags, front_end_options
    add_worker_flags(p, "configurations")
    add_option_flags(p, [], front_end_options())        # a NetX file's import options
    p.set_defaults(func=cmd_compare)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NeurodeployError(f"'{text}' is not a comma-separated list of integers", flag) from None


def cmd_compare(args) -> int:
    from ..api import compare
    from .compare import to_markdown
    from ..frontends.netx.options import netx_fields
    netx_options = {f.name: getattr(args, f.name) for f in netx_fields() if hasattr(args, f.name)}
    sweeps = {s.compare_sweep[0].lstrip("-").replace("-", "_"): _ints(getattr(args, f"sweep_{s.name}"),
                                                                        s.compare_sweep[0])
              for s in all_schemes() if s.compare_sweep is not None}
    d = compare(args.model, args.input, args.labels, schemes=args.schemes, output=args.output, target=args.target,
                calibration=args.calibration, progress=True, workers=args.workers, ray_address=args.ray_address,
                **sweeps, **netx_options)
    print(json.dumps(d, indent=1) if args.json else to_markdown(d))
    return 0
