"""Energy models as data: per-operation energies read from `targets/energy/*.toml`.

A model prices the operation counts of a cost report (costs.py).  Each file names the chip it
describes, how far its numbers can be trusted (`status`) and where they come from (`source`; every
number carries its own source in a comment).  A model may price the SNN side (`[snn.energy_pj]`),
the ANN side (`[ann.energy_pj]`) or neither: a file with only a `statement` says that no figures
exist for its chip (Loihi 2).  A figure is always computed under one model; counts a model has no
price for are listed as "not counted", never filled in from another model.

    [snn.energy_pj]  synaptic_op, neuron_update_active, neuron_update_spiking,
                     neuron_update_inactive, spike_message
    [ann.energy_pj]  mac, pool_add, pool_compare
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NeurodeployError
from ..target import TARGETS_DIR

ENERGY_DIR = TARGETS_DIR / "energy"

# What each counter counts (per inference); costs.py produces exactly these keys.
SNN_COUNTERS = {
    "synaptic_op": "synaptic operations: each spike times the synapses it reaches (one accumulate each)",
    "neuron_update_active": "neuron updates in steps where the scheme uses the neuron (accumulating or "
                            "emitting) and it does not spike",
    "neuron_update_spiking": "neuron updates in which the neuron spikes",
    "neuron_update_inactive": "neuron updates in the remaining steps of the inference (idle neurons)",
    "spike_message": "spike messages: each spike once per destination core",
}
ANN_COUNTERS = {
    "mac": "multiply-accumulates of the ANN's weighted layers (valid kernel taps only)",
    "pool_add": "additions of sum/average pooling windows",
    "pool_compare": "comparisons of max pooling windows",
}
SIDES = {"snn": SNN_COUNTERS, "ann": ANN_COUNTERS}


@dataclass(frozen=True)
class EnergyModel:
    name: str
    title: str
    chip: str
    status: str
    source: str
    snn: dict = field(default_factory=dict)     # counter -> pJ
    ann: dict = field(default_factory=dict)
    statement: str = ""                          # for chips without figures
    path: str = ""

    @property
    def has_figures(self) -> bool:
        return bool(self.snn or self.ann)

    def price(self, side: str, counts: dict) -> dict:
        """Energy in pJ of `counts` (counter -> number) under this model, one side at a time.

        Returns {"pj": total or None when the model prices nothing on this side,
                 "by_op_pj": {counter: pJ}, "not_counted": [counters with a non-zero count and no price]}.
        """
        table = getattr(self, side)
        if not table:
            return {"pj": None, "by_op_pj": {}, "not_counted": sorted(k for k, v in counts.items() if v)}
        by_op = {k: float(counts.get(k, 0)) * e for k, e in table.items()}
        return {"pj": float(sum(by_op.values())), "by_op_pj": by_op,
                "not_counted": sorted(k for k, v in counts.items() if v and k not in table)}

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "chip": self.chip, "status": self.status,
                "source": self.source, "snn_energy_pj": dict(self.snn), "ann_energy_pj": dict(self.ann),
                "statement": self.statement or None}


def available_models() -> list[str]:
    return sorted(p.stem for p in ENERGY_DIR.glob("*.toml"))


def load_model(name_or_path: str | Path) -> EnergyModel:
    """Load `targets/energy/<name>.toml` or an explicit .toml path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = ENERGY_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise NeurodeployError(f"unknown energy model '{name_or_path}'", str(path),
                               f"use one of {', '.join(available_models())} or a path to a .toml file")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NeurodeployError(f"energy model is not valid TOML ({exc})", str(path),
                               "fix the file or pick another model") from None
    for key in ("name", "title", "chip", "status", "source"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise NeurodeployError(f"energy model lacks the text key '{key}'", str(path),
                                   "compare it with targets/energy/loihi1_davies2018.toml")
    tables = {}
    for side, known in SIDES.items():
        table = raw.get(side, {}).get("energy_pj", {})
        if not isinstance(table, dict):
            raise NeurodeployError(f"[{side}.energy_pj] must be a table", str(path), "see targets/energy/")
        for k, v in table.items():
            if k not in known:
                raise NeurodeployError(f"unknown {side} operation '{k}'", str(path),
                                       f"use {', '.join(known)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise NeurodeployError(f"{side}.energy_pj.{k} = {v!r} is not a non-negative number of pJ",
                                       str(path), "write the energy in picojoules")
        tables[side] = {k: float(v) for k, v in table.items()}
    statement = raw.get("statement", "")
    if not tables["snn"] and not tables["ann"] and not statement:
        raise NeurodeployError("energy model has no figures and no statement", str(path),
                               "add [snn.energy_pj] / [ann.energy_pj] or a statement")
    return EnergyModel(raw["name"], raw["title"], raw["chip"], raw["status"], raw["source"],
                       tables["snn"], tables["ann"], statement, str(path))


def load_models(names: list[str] | None = None) -> list[EnergyModel]:
    """The named models, or every model in targets/energy/ (sorted by name)."""
    return [load_model(n) for n in (names if names else available_models())]
