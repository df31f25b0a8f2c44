"""The `neurodeploy compile` options of a NetX import: the arguments netx.hdf5.Network takes besides the file."""
from __future__ import annotations

from .build import INPUT_MODES


def add_arguments(p, timesteps: bool = False) -> None:
    """The options of a NetX import; `timesteps` adds --timesteps too (commands without their own)."""
    g = p.add_argument_group("Lava-DL NetX files (.net): how netx.hdf5.Network would be called")
    if timesteps:
        g.add_argument("--timesteps", type=int, metavar="T",
                       help="steps a CUBA network runs (default: the file's simulation/tSample)")
    g.add_argument("--reset-interval", type=int, metavar="N",
                   help="netx reset_interval: CUBA neurons reset u and v every N steps (Lava's LIFReset; "
                        "block k at steps t with t %% N == reset_offset + 1 + k); default: no reset")
    g.add_argument("--reset-offset", type=int, default=0, metavar="K", help="netx reset_offset (default 0)")
    g.add_argument("--input-message-bits", type=int, metavar="B",
                   help="netx input_message_bits: graded input of B bits into net.inp (default 0: binary "
                        "spikes); for files without an input neuron")
    g.add_argument("--input-mode", choices=INPUT_MODES, default="auto",
                   help="input of a file without an input neuron: sequence = a frame per step, inputs shaped "
                        "(N, T, ...) (auto for CUBA); constant = one frame, sent every step (CUBA) or once (SDNN, "
                        "auto)")


def options_from(args, timesteps: bool = False) -> dict:
    """The CompileOptions fields these arguments set."""
    out = {"reset_interval": args.reset_interval, "reset_offset": args.reset_offset,
           "input_message_bits": args.input_message_bits, "input_mode": args.input_mode}
    if timesteps:
        out["timesteps"] = args.timesteps
    return out


def compare_configs(model, schemes: list[str], options: dict) -> tuple[list, list]:
    """`neurodeploy compare` on a NetX file: one configuration, the file's own scheme (with the
    import options); the other schemes asked for are skipped with the reason."""
    from ...schemes import CompileOptions
    from . import import_netx
    own = import_netx(model, options=CompileOptions(**options)).scheme
    skipped = [{"config": s, "reason": f"{model}: a NetX file imports as the {own} network it holds, not as {s}"}
               for s in schemes if s != own]
    defaults = CompileOptions()
    shown = {k: v for k, v in options.items() if v is not None and v != getattr(defaults, k)}
    return [{"scheme": own, "name": f"netx_{own}", "options": shown}], skipped
