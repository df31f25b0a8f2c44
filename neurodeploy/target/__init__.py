"""Hardware targets, read from the TOML files in the repository's `targets/` folder.

Nothing about a chip is hard-coded elsewhere: passes ask a `Target` for bit widths and
limits.  `--target NAME` looks for `targets/NAME.toml`; a path to a .toml file works too.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import NeurodeployError

TARGETS_DIR = Path(__file__).resolve().parent.parent.parent / "targets"


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    weight_mant_bits: int      # signed mantissa width of a synaptic weight
    weight_exp_min: int        # per-layer weight exponent range
    weight_exp_max: int
    state_bits: int            # signed width of the membrane / accumulator state
    v_th_mant_bits: int        # unsigned width of a threshold mantissa
    bias_mant_bits: int        # signed width of a bias mantissa
    bias_exp_max: int          # bias = bias_mant << bias_exp, 0 <= bias_exp <= bias_exp_max
    decay_bits: int
    graded_spikes: bool
    payload_bits: int          # graded-spike payload width
    cores_per_chip: int        # 0 = unlimited
    neurons_per_core: int      # 0 = unlimited
    synaptic_memory_bytes_per_core: int  # 0 = unlimited
    raw: dict

    @property
    def weight_mant_max(self) -> int:
        return (1 << (self.weight_mant_bits - 1)) - 1

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1

    @property
    def v_th_mant_max(self) -> int:
        return (1 << self.v_th_mant_bits) - 1

    @property
    def bias_mant_max(self) -> int:
        return (1 << (self.bias_mant_bits - 1)) - 1

    def to_dict(self) -> dict:
        return dict(self.raw)


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(name_or_path: str) -> Target:
    """Load `targets/<name>.toml` or an explicit .toml path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = TARGETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise NeurodeployError(
            f"unknown target '{name_or_path}'", str(path),
            f"use one of {', '.join(available_targets())} or a path to a target .toml file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise NeurodeployError(f"target file is not valid TOML ({exc})", str(path),
                               "fix the file or pick another target") from None
    try:
        w, n, s, c = raw["weights"], raw["neuron"], raw["spikes"], raw["chip"]
        return Target(
            name=raw["name"], description=raw.get("description", ""),
            weight_mant_bits=int(w["mant_bits"]), weight_exp_min=int(w["exp_min"]),
            weight_exp_max=int(w["exp_max"]),
            state_bits=int(n["state_bits"]), v_th_mant_bits=int(n["v_th_mant_bits"]),
            bias_mant_bits=int(n["bias_mant_bits"]), bias_exp_max=int(n["bias_exp_max"]),
            decay_bits=int(n["decay_bits"]),
            graded_spikes=bool(s["graded"]), payload_bits=int(s["payload_bits"]),
            cores_per_chip=int(c["cores_per_chip"]), neurons_per_core=int(c["neurons_per_core"]),
            synaptic_memory_bytes_per_core=int(c["synaptic_memory_bytes_per_core"]),
            raw=raw,
        )
    except KeyError as exc:
        raise NeurodeployError(f"target file lacks the key {exc}", str(path),
                               "compare it with targets/loihi2.toml") from None
