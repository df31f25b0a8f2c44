"""Cost reports (`neurodeploy report`): counts checked by hand, the JSON schema, the HTML page in a
real headless browser, and the command line's errors."""
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import netgen
from neurodeploy import cli
from neurodeploy.compiler import compile_model, save_artifact
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import neurons as nrn
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.spiking import Branch, InputEncoder, Layer, SpikingGraph
from neurodeploy.reports import costs, energy, schema, tables
from neurodeploy.target import allocation
from neurodeploy.reports.build import build_report
from neurodeploy.reports.document import slug
from neurodeploy.reports.html import to_html
from neurodeploy.reports.markdown import to_markdown
from neurodeploy.schemes import CompileOptions
from neurodeploy.schemes.bitplane.neurons import BitplaneEncoder, BitplaneIF
from neurodeploy.ir.synapse_ops import apply_ops
from conftest import ROOT  # noqa: E402

MODEL = ROOT / "models" / "digits_qcfs.onnx"
X = ROOT / "models" / "digits_test_x.npy"
Y = ROOT / "models" / "digits_test_y.npy"


# --- a two-layer network small enough to count by hand ------------------------------------------
#
# input (1,4,4), codes 0..3 in T=2 planes  ->  conv (2,4,4): all-ones 3x3 kernels, padding 1,
# D = 1, codes 0..3 in T=2 planes  ->  readout (3,): 2x2 sum pool, flatten, dense 3x8.

def tiny_net(neurons_per_core=1024, memory_per_core=1 << 20, cores_per_chip=128) -> SpikingGraph:
    enc = InputEncoder("input", (1, 4, 4), np.asarray(3.0), np.asarray(0.5), np.asarray(1 / 3),
                       BitplaneEncoder(code_max=3, n_steps=2))
    conv = Layer("conv", (2, 4, 4),
                 [Branch("input", [syn.Conv(np.ones((2, 1, 3, 3), np.int64), (1, 1), (1, 1))], 0)],
                 np.zeros(2, np.int64), 0, BitplaneIF(v_th_mant=1, code_max=3, n_steps=2))
    w = np.arange(24, dtype=np.int64).reshape(3, 8) - 12
    out = Layer("readout", (3,), [Branch("conv", [syn.SumPool((2, 2), (2, 2)), syn.Flatten(), syn.Dense(w)], 0)],
                np.zeros(3, np.int64), 0, nrn.Readout(output_scale=1.0))
    spec = {"name": "handmade", "description": "hand-counted test chip", "weights": {"mant_bits": 8},
            "chip": {"cores_per_chip": cores_per_chip, "neurons_per_core": neurons_per_core,
                     "synaptic_memory_bytes_per_core": memory_per_core}}
    return SpikingGraph("bitplane", "handmade", [enc, conv, out],
                        {"latency_steps": 4, "throughput_steps": 2, "target_spec": spec,
                         "model": {"file": "tiny", "sha256": "0" * 64}})


def tiny_input() -> np.ndarray:
    """One sample: pixel (0,0) -> code 3 (2 spikes), pixel (1,1) -> code 1 (1 spike), others 0."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = 1.0        # floor(3*1 + 0.5) = 3
    x[0, 0, 1, 1] = 0.34       # floor(1.02 + 0.5) = 1
    return x


def layer(d, name):
    return next(l for l in d["layers"] if l["name"] == name)


def test_tiny_network_counts_by_hand():
    d = costs.cost_report(tiny_net(), tiny_input(), batch_size=1)
    inp, conv, out = layer(d, "input"), layer(d, "conv"), layer(d, "readout")
    # neurons; the encoder runs on the host
    assert (inp["neurons"], conv["neurons"], out["neurons"]) == (16, 32, 3)
    assert d["totals"]["neurons"] == 35 and d["totals"]["input_neurons"] == 16
    # synapses: a 3x3 kernel with padding 1 on 4x4 has 4*9 + 8*6 + 4*4 = 100 valid taps per channel pair
    assert conv["synapses"] == 2 * 1 * 100
    # the 2x2 pool folded into the dense weights: every conv neuron reaches all 3 readout neurons
    assert out["synapses"] == 3 * 32
    assert conv["unique_weights"] == 18 and out["unique_weights"] == 24
    # memory: 8-bit weights, no index bits -> one byte per synapse; one core per layer here
    assert conv["synaptic_memory_bytes"] == 200 and out["synaptic_memory_bytes"] == 96
    assert (conv["cores"], out["cores"], d["summary"]["cores"]) == (1, 1, 2)
    # spikes: input codes 3 and 1 -> 2 + 1 spikes.  conv: window sums 4 (clamped to 3: 2 spikes) at
    # the 4 outputs seeing both pixels, 1 (1 spike) at the 5 others seeing (1,1); 2 channels.
    assert inp["spikes_per_sample"] == 3
    assert conv["spikes_per_sample"] == 2 * (4 * 2 + 5 * 1) == 26
    assert out["spikes_per_sample"] == 0
    # synaptic ops = spikes x fan-out.  Fan-out of pixel (r, c) = a_r * a_c * 2 channels with
    # a = (2, 3, 3, 2) outputs per axis: (0,0) -> 8 synapses x 2 spikes, (1,1) -> 18 x 1.
    assert conv["synaptic_ops_per_sample"] == 2 * 8 + 1 * 18 == 34
    assert out["synaptic_ops_per_sample"] == 26 * 3 == 78
    assert d["totals"]["synaptic_ops_per_sample"] == 112
    # time: input emits steps 1-2, conv accumulates in 1-2 and emits in 3-4, readout accumulates in 3-4
    assert conv["emit_window"] == [2, 4] and conv["active_steps"] == 4 and out["active_steps"] == 2
    assert d["summary"]["latency_steps"] == 4 and d["summary"]["throughput_steps"] == 2
    # neuron updates = neurons x steps: conv 32 x 4 active (26 of them spiking), readout 3 x 2 + 3 x 2 idle
    assert conv["neuron_updates_per_sample"] == {"active": 32 * 4 - 26, "spiking": 26, "inactive": 0}
    assert out["neuron_updates_per_sample"] == {"active": 6, "spiking": 0, "inactive": 6}
    # spike messages: one destination core per layer -> one message per spike
    assert inp["spike_messages_per_sample"] == 3 and conv["spike_messages_per_sample"] == 26
    # the ANN: conv MACs = valid taps; dense after the pool: 3 x 8 MACs and 2*2*2 windows x 4 adds
    assert conv["ann_ops"] == {"mac": 200, "pool_add": 0, "pool_compare": 0}
    assert out["ann_ops"] == {"mac": 24, "pool_add": 32, "pool_compare": 0}
    assert d["activity"]["synaptic_ops_exact"]


def test_tiny_network_energy_by_hand():
    d = costs.cost_report(tiny_net(), tiny_input(), batch_size=1)
    models = {m["name"]: m for m in d["energy"]["models"]}
    davies = models["loihi1_davies2018"]
    expect = 112 * 23.6 + (102 + 6) * 81.0 + 26 * 81.0 + 6 * 52.0 + (3 + 26) * 1.7
    assert davies["snn"]["pj"] == pytest.approx(expect)
    assert davies["ann"]["pj"] is None and davies["role"] == "proxy"
    cmos = models["cmos45_horowitz"]
    assert cmos["snn"]["pj"] == pytest.approx(112 * 0.9)
    assert cmos["ann"]["pj"] == pytest.approx((200 + 24) * 4.6 + 32 * 0.9)
    # what a model does not price is said, not borrowed from another model
    assert "neuron_update_inactive" in cmos["snn"]["not_counted"] and "mac" in davies["ann"]["not_counted"]
    # per-layer figures add up to the model's total
    for m in models.values():
        assert sum(l["energy_pj"][m["name"]]["snn"] for l in d["layers"]) == pytest.approx(m["snn"]["pj"])
    # a target without an energy model says so
    assert "no energy model for target 'handmade'" in d["energy"]["statement"]


def test_cores_greedy_and_messages_per_destination_core():
    # 8 neurons per core: conv (2,4,4) -> 4 cores of two rows of one channel each
    d = costs.cost_report(tiny_net(neurons_per_core=8), tiny_input(), batch_size=1)
    assert layer(d, "conv")["cores"] == 4 and layer(d, "readout")["cores"] == 1
    # pixel (0,0) reaches rows 0-1 of both channels: 2 cores, 2 spikes; pixel (1,1) reaches rows 0-2:
    # 4 cores, 1 spike
    assert layer(d, "input")["spike_messages_per_sample"] == 2 * 2 + 1 * 4
    # memory-limited: 40 bytes per core; conv fan-ins row by row 4,6,6,4 | 6,9,... -> 35 bytes fit
    d = costs.cost_report(tiny_net(neurons_per_core=0, memory_per_core=40), tiny_input(), batch_size=1)
    assert layer(d, "conv")["max_core_synaptic_memory_bytes"] <= 40 and d["summary"]["fits_target"]
    # a neuron whose synapses exceed a core cannot be placed
    d = costs.cost_report(tiny_net(memory_per_core=5), tiny_input(), batch_size=1)
    assert not d["summary"]["fits_target"] and "more than the 5 bytes" in d["allocation"]["problems"][0]
    # too many cores for one chip
    d = costs.cost_report(tiny_net(neurons_per_core=8, cores_per_chip=2), tiny_input(), batch_size=1)
    assert d["summary"]["chips"] == 3 and not d["summary"]["fits_target"]
    # index bits add to every synapse
    d = costs.cost_report(tiny_net(), tiny_input(), batch_size=1, index_bits=8)
    assert layer(d, "conv")["synaptic_memory_bytes"] == 400


def dense_net() -> SpikingGraph:
    """tiny_net's input and target with dense layers only: input (1,4,4) -> fc (8,) -> readout (3,)."""
    net = tiny_net()
    fc = Layer("fc", (8,), [Branch("input", [syn.Flatten(), syn.Dense(np.ones((8, 16), np.int64))], 0)],
               np.zeros(8, np.int64), 0, BitplaneIF(v_th_mant=1, code_max=3, n_steps=2))
    out = Layer("readout", (3,), [Branch("fc", [syn.Dense(np.arange(24, dtype=np.int64).reshape(3, 8) - 12)], 0)],
                np.zeros(3, np.int64), 0, nrn.Readout(output_scale=1.0))
    return SpikingGraph("bitplane", "handmade", [net.layers[0], fc, out], net.meta)


def test_counts_say_when_they_are_upper_bounds():
    """Every connection is counted as its own synapse: a convolution (or a pool folded before a
    dense layer) uses one weight for several connections, which a chip can store once, so those
    counts are upper bounds and every view of the report says so; dense layers are counted exactly."""
    d = costs.cost_report(tiny_net(), tiny_input(), batch_size=1)
    assert d["summary"]["upper_bound"] and d["allocation"]["upper_bound"]
    assert "no weight sharing" in d["allocation"]["upper_bound_reason"]
    md = to_markdown(d)
    assert "Synaptic memory, cores and chips are upper bounds: every connection is stored as its own" in md
    summary = next(line for line in md.splitlines() if line.startswith("| bitplane |"))
    memory, cores = [c.strip() for c in summary.strip("|").split("|")][-3:-1]
    assert d["summary"]["synaptic_memory_bytes"] == 296
    assert memory == f"at most {tables.units_of(d).m(296)}" and cores == "at most 2 (1 chip)", summary
    assert "upper bounds" in to_html(d)
    d = costs.cost_report(dense_net(), tiny_input(), batch_size=1)
    assert not d["summary"]["upper_bound"] and d["allocation"]["upper_bound_reason"] is None
    md = to_markdown(d)
    assert "upper bound" not in md and "at most" not in md and "| 2 (1 chip) |" in md
    # each branch form on its own: the conv, the pool folded before a dense layer, dense alone
    conv, out = tiny_net().layers[1:]
    assert allocation._shares_weights(conv.branches[0].ops) and allocation._shares_weights(out.branches[0].ops)
    assert not any(allocation._shares_weights(b.ops) for layer in dense_net().layers[1:] for b in layer.branches)
    assert allocation.check_fits(tiny_net())["upper_bound"] and not allocation.check_fits(dense_net())["upper_bound"]


def _dense_connectivity(ops, src_shape):
    """Brute force: push every one-hot source through the ones-weight chain."""
    n = int(np.prod(src_shape))
    eye = torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(src_shape))
    return (apply_ops(allocation.ones(ops), eye).reshape(n, -1) > 0).numpy()     # (src, tgt)


@pytest.mark.parametrize("ops,src_shape", [
    ([syn.Conv(np.ones((4, 2, 3, 3)), (2, 2), (1, 1), (1, 1), 2)], (4, 7, 7)),           # stride, groups
    ([syn.SumPool((2, 2), (2, 2)), syn.Conv(np.ones((3, 2, 3, 3)), (1, 1), (1, 1))], (2, 6, 6)),
    ([syn.SumPool((3, 3), (1, 1)), syn.Conv(np.ones((2, 2, 1, 1)))], (2, 5, 5)),         # overlapping, 1 path
    ([syn.SumPool((2, 2), (1, 1)), syn.Conv(np.ones((2, 2, 3, 3)), (1, 1), (1, 1))], (2, 5, 5)),  # 2+ paths
    ([syn.Conv(np.ones((2, 1, 3, 3)), (1, 1), (1, 1)), syn.SumPool((2, 2), (2, 2))], (1, 4, 4)),  # pool after
    ([syn.SumPool((2, 2), (2, 2)), syn.Flatten(), syn.Dense(np.ones((5, 8)))], (2, 4, 4)),
    # the lowering's other chain forms (the structured path of `Connectivity`)
    ([syn.Conv(np.ones((6, 1, 3, 3)), (2, 2), (2, 2), (2, 2), 3)], (3, 9, 8)),      # depthwise x2, dilated
    ([syn.Conv(np.ones((4, 2, 1, 1)), (2, 2))], (2, 5, 5)),                        # option-B shortcut: odd pixels idle
    ([syn.SumPool((2, 2), (3, 3)), syn.Conv(np.ones((3, 2, 2, 2)), (1, 1), (1, 1))], (2, 8, 7)),  # pool gaps
    ([syn.Conv(np.ones((3, 2, 3, 3)), (1, 1), (1, 1)), syn.Flatten()], (2, 4, 4)),
    ([syn.ChannelScale(np.ones(3))], (3, 4, 4)),                                  # identity shortcut
    ([syn.SumPool((2, 2), (2, 2)), syn.ChannelScale(np.ones(2))], (2, 4, 6)),
    ([syn.Dense(np.ones((7, 6)))], (6,)),
    ([syn.Flatten(), syn.Dense(np.ones((4, 18)))], (2, 3, 3)),
])
def test_connectivity_matches_brute_force(ops, src_shape):
    m = _dense_connectivity(ops, src_shape)
    c = allocation.Connectivity(allocation.ones(ops), src_shape, m.shape[1], allocation.paths_unique(ops)).build()
    assert np.array_equal(c.fan_in, m.sum(0)) and np.array_equal(c.fan_out, m.sum(1))
    n = m.shape[1]
    cuts = np.sort(np.random.default_rng(n).choice(np.arange(1, n), size=min(n - 1, 9), replace=False))
    for bounds in ([(0, 3), (3, n // 2), (n // 2, n)],
                   list(zip([0, *cuts], [*cuts, n]))):       # ten cores, cut anywhere in the planes
        want = np.stack([m[:, a:b].any(1) for a, b in bounds], 1).sum(1)
        assert np.array_equal(c.dest_cores(bounds), want)


def test_structured_connectivity_is_used_for_the_lowerings_chains():
    """fan-in/out and destination cores of [pools, one weighted op, Flatten] come from the chain's
    structure (work per kernel tap and neuron, not per connection): here the chain cannot be run
    whole, because its convolution is never applied to all of its channels."""
    ops = [syn.SumPool((2, 2), (2, 2)), syn.Conv(np.ones((8, 4, 3, 3)), (1, 1), (1, 1)), syn.Flatten()]
    assert allocation.split_chain(ops) is not None
    assert allocation.split_chain([syn.Conv(np.ones((1, 1, 1, 1))), syn.SumPool((2, 2), (2, 2))]) is None
    calls = []
    real = allocation.apply_ops

    def spy(chain, x, weights=None):
        calls.append([op for op in chain if isinstance(op, syn.Conv)])
        return real(chain, x, weights)
    import unittest.mock
    with unittest.mock.patch.object(allocation, "apply_ops", spy):
        c = allocation.Connectivity(allocation.ones(ops), (4, 8, 8), 8 * 16, True).build()
        c.dest_cores([(0, 5), (5, 40), (40, 128)])
    assert all(conv.weight.shape[:2] == (1, 1) for chain in calls for conv in chain)
    m = _dense_connectivity(ops, (4, 8, 8))
    assert np.array_equal(c.fan_in, m.sum(0)) and np.array_equal(c.fan_out, m.sum(1))


def _compiled(model, tmp_path, name):
    p = tmp_path / f"{name}.onnx"
    onnx.save(model, p)
    return compile_model(p, "loihi2", "bitplane", CompileOptions())


@pytest.mark.parametrize("kind", ["avg", "max", "residual", "rate"])
def test_generated_networks_consistent(tmp_path, kind):
    model = netgen.residual_net(3) if kind == "residual" else netgen.conv_net(3, pool="max" if kind == "max" else "avg")
    if kind == "rate":
        p = tmp_path / "rate.onnx"
        onnx.save(model, p)
        net = compile_model(p, "loihi2", "rate", CompileOptions(timesteps=8))
    else:
        net = _compiled(model, tmp_path, kind)
    x = netgen.random_inputs(net.input.shape, 12)
    d = costs.cost_report(net, x, batch_size=5)
    schema.validate(d, use_jsonschema=False)
    assert d["activity"]["synaptic_ops_exact"]
    # every on-chip neuron is updated in every step of the inference
    for l in d["layers"]:
        if l["on_chip"]:
            assert sum(l["neuron_updates_per_sample"].values()) == pytest.approx(l["neurons"] * d["summary"]["latency_steps"])
    # the readout is dense: every spike into it reaches all of its neurons
    ro = d["layers"][-1]
    (src,) = ro["sources"]
    n_out = ro["neurons"]
    assert ro["synaptic_ops_per_sample"] == pytest.approx(layer(d, src)["spikes_per_sample"] * n_out)
    if kind == "avg":
        # a conv after a non-overlapping 2x2 average pool: 4 synapses for each MAC of the ANN's conv
        assert layer(d, "conv2")["synapses"] == 4 * layer(d, "conv2")["ann_ops"]["mac"]
    if kind == "max":
        assert layer(d, "conv2")["ann_ops"]["pool_compare"] == 6 * 4 * 4 * 4
    # spikes agree with the simulator's own totals
    from neurodeploy.sim.engine import simulate
    _, spikes = simulate(net, x, batch_size=5)
    for name, total in spikes.items():
        assert layer(d, name)["spikes_per_sample"] * len(x) == pytest.approx(total)


# --- the digits model: formats, schema, browser ------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "digits"
    net = compile_model(MODEL, "loihi2", "bitplane", CompileOptions())
    save_artifact(net, out)
    x, y = np.load(X)[:120], np.load(Y)[:120]
    return {"dir": out, "net": net, "x": x, "y": y,
            "report": costs.cost_report(net, x, 64, labels=y, model_path=str(MODEL))}


def test_json_validates_against_schema(digits):
    d = json.loads(json.dumps(digits["report"]))          # exactly what --format json writes
    schema.validate(d, use_jsonschema=False)
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        pass
    else:
        jsonschema.Draft202012Validator.check_schema(schema.load_schema())
        schema.validate(d, use_jsonschema=True)
    # the checker does catch a broken report
    bad = json.loads(json.dumps(d))
    bad["layers"][1]["synapses"] = -1
    with pytest.raises(schema.ReportSchemaError, match="layers/1/synapses"):
        schema.validate(bad, use_jsonschema=False)
    del bad["summary"]["cores"]
    with pytest.raises(schema.ReportSchemaError, match="cores"):
        schema.validate(bad, use_jsonschema=False)


def test_digits_report_loihi2_has_no_energy_number(digits):
    d = digits["report"]
    s = d["summary"]
    assert s["scheme"] == "bitplane" and s["target"] == "loihi2" and s["latency_steps"] == 13
    assert s["accuracy"]["snn"] == s["accuracy"]["quantised_ann"] and s["accuracy"]["float_ann"] > 0.9
    assert "no public per-operation energy figures" in s["energy_statement"]
    assert all(m["chip"] != "loihi2" and m["role"] == "proxy" for m in d["energy"]["models"])
    md = to_markdown(d)
    assert "no public per-operation figures" in md and "**Target loihi2:**" in md
    for needle in ("| conv2 |", "synaptic ops", "Assumptions", "loihi1_davies2018", "pre-silicon",
                   "Synaptic memory, cores and chips are upper bounds"):
        assert needle in md, needle
    # the compile summary says it too, beside the allocation it made
    from neurodeploy.reports.summary import summary_markdown
    summary = summary_markdown(digits["net"])
    assert re.search(r"- cores: \d+ on 1 chip\(s\) of 128 cores -- upper bounds: every connection", summary)


def test_html_is_self_contained_and_renders_in_headless_chromium(digits, tmp_path):
    """The page needs no other file; its figures are inline SVG with text as text; Chromium lays every
    figure out (tests/test_legibility.py checks their labels), and the screenshot is not blank."""
    import browser
    d = build_report(digits["net"], digits["x"][:60], labels=digits["y"][:60], model=MODEL, batch_size=64)
    page = to_html(d)
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert "<img" not in page and "render-check" not in page and "figures rendered" not in page
    figs = re.findall(r'<figure id="([^"]+)"><svg [^>]*>(.*?)</svg>', page, re.S)
    assert {i for i, _ in figs} == {"fig-spikes", "fig-headroom", "fig-energy", "fig-memory", "fig-ops"}
    for ident, body in figs:
        assert body.count("<text") >= 5, ident                      # labels stay text (svg.fonttype none)
    got = browser.layout(page, 1200)
    assert len(got["figures"]) == len(figs) and all(f["height"] > 100 for f in got["figures"])
    g = browser.screenshot(page, 1200, 1800)
    assert g.shape == (1800, 1200)
    assert (g < 200).mean() > 0.02 and g.std() > 20, "the screenshot is blank"


def test_report_leads_with_the_verdict_then_chip_then_costs(digits):
    """Sections in the order a reader needs them, a contents list linking to each, one unit per
    quantity, and sources as numbered notes citing the target and energy files."""
    d = build_report(digits["net"], digits["x"][:60], labels=digits["y"][:60], model=MODEL, batch_size=64)
    md = to_markdown(d)
    heads = re.findall(r"^## (.+)$", md, re.M)
    assert heads[:3] == ["1. Verdict", "2. Loihi 2 deployability", "3. Costs at a glance"] and heads[-1] == "Sources"
    for h in heads[:-1]:                                  # the contents list links every section
        assert f"(#{slug(h)})" in md, h
    verdict = md[md.index("## 1. Verdict"):md.index("## 2.")]
    assert "**EXACT**: the guarantee holds. 0 conversion mismatches on all 4 layers" in verdict
    assert "| layer | values compared | conversion mismatches | quantisation mismatches |" in verdict
    assert "| accuracy | 98.33% | 98.33% | 98.33% |" in verdict
    assert "Needs custom microcode: conv1, conv2, readout" in md
    # one unit per quantity: energies in one unit (named in the headers), no other energy prefix in the
    # report's own text (the sources below quote the files, whose comments have their own units)
    body = md.split("## Sources")[0]
    units = set(re.findall(r"\((pJ|nJ|µJ|mJ)\b", body.replace("pJ each", "")))
    assert len(units) == 1, units
    (unit,) = units
    assert not re.search(r"\d (pJ|nJ|µJ|uJ|mJ)\b", body), "a unit repeated in a cell"
    assert f"Energy in {unit}" in md and "KiB" in md and "MiB" not in md
    # sources: numbered notes naming the file, the key and what the file cites; no internal notes
    notes = re.findall(r"^\[\^(\d+)\]: (.+)$", md, re.M)
    assert notes and [int(n) for n, _ in notes] == list(range(1, len(notes) + 1))
    texts = "\n".join(t for _, t in notes)
    assert "`targets/loihi2.toml`, `chip.neurons_per_core = 8192`: 1,048,576 neurons / 128 cores" in texts
    assert "`targets/energy/loihi1_sanafe.toml`, `snn.energy_pj.synaptic_op = 35.5`: synapse energy_spike" in texts
    for n, _ in notes:
        assert f"[^{n}]" in md.split("## Sources")[0], n        # every note is cited
    assert "read in source" not in md and "figures rendered" not in md
    schema.validate(json.loads(json.dumps(d)), use_jsonschema=False)


def test_report_without_model_says_the_verdict_was_not_checked(digits):
    d = build_report(digits["net"], digits["x"][:20], labels=digits["y"][:20])
    md = to_markdown(d)
    assert "Not checked: pass `--model`" in md and "EXACT" not in md
    assert "| float ANN | quantised ANN | SNN |" in md


# --- the command line ---------------------------------------------------------------------------

@pytest.fixture
def run_cli(monkeypatch, capsys):
    if "neurodeploy.reports.report_cli" not in cli.EXTRA_COMMANDS:
        monkeypatch.setattr(cli, "EXTRA_COMMANDS", [*cli.EXTRA_COMMANDS, "neurodeploy.reports.report_cli"])

    def run(*args):
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_cli_formats(digits, run_cli, tmp_path):
    np.save(tmp_path / "x.npy", digits["x"][:20])
    np.save(tmp_path / "y.npy", digits["y"][:20])
    code, out, err = run_cli("report", digits["dir"], "--input", tmp_path / "x.npy", "--labels", tmp_path / "y.npy")
    assert code == 0, err
    assert out.startswith("# Report: digits_qcfs.onnx: bitplane on loihi2") and "| conv1 |" in out
    code, _, err = run_cli("report", digits["dir"], "--input", tmp_path / "x.npy", "--format", "json",
                           "-o", tmp_path / "r.json", "--energy-model", "cmos45_horowitz")
    assert code == 0, err
    d = json.loads((tmp_path / "r.json").read_text())
    schema.validate(d, use_jsonschema=False)
    assert [m["name"] for m in d["energy"]["models"]] == ["cmos45_horowitz"] and d["samples"] == 20
    code, _, err = run_cli("report", digits["dir"], "--input", tmp_path / "x.npy", "--format", "html",
                           "-o", tmp_path / "r.html")
    assert code == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_bad_input_is_one_line_exit_2(digits, run_cli, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
    np.save(tmp_path / "x.npy", digits["x"][:4])
    np.save(tmp_path / "y.npy", np.zeros(3))
    np.save(tmp_path / "y4.npy", np.zeros(4, np.int64))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    cases = [
        (["--input", tmp_path / "bad.npy"], "does not match the model input"),
        (["--input", tmp_path / "missing.npy"], "file not found"),
        (["--input", tmp_path / "x.npy", "--labels", tmp_path / "y.npy"], "labels shaped (3,)"),
        (["--input", tmp_path / "x.npy", "--energy-model", "nope"], "unknown energy model 'nope'"),
        (["--input", tmp_path / "x.npy", "--model", MODEL], "--model needs --labels"),
        (["--input", tmp_path / "x.npy", "--batch-size", "0"], "batch size 0"),
        (["--input", tmp_path / "x.npy", "-o", tmp_path], "is a directory"),
        (["--input", tmp_path / "x.npy", "--labels", tmp_path / "y4.npy", "--model", tmp_path / "bad.onnx"],
         "is not the model this network was compiled from"),
        (["--input", tmp_path / "x.npy", "--labels", tmp_path / "y4.npy", "--model", tmp_path / "bad.onnx",
          "--allow-other-model"], "onnxruntime cannot run the model"),
    ]
    for args, needle in cases:
        code, out, err = run_cli("report", digits["dir"], *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, (needle, err)
    code, _, err = run_cli("report", tmp_path / "nowhere", "--input", tmp_path / "x.npy")
    assert code == 2 and "not a directory" in err


def test_energy_model_files(tmp_path):
    names = energy.available_models()
    assert {"loihi1_davies2018", "loihi1_sanafe", "cmos45_horowitz", "loihi2_public"} <= set(names)
    for n in names:
        m = energy.load_model(n)
        assert m.status and m.source and m.chip
        text = Path(m.path).read_text()
        for line in text.splitlines():           # every number carries its source in a comment
            if re.match(r"^\w+\s*=\s*[\d.]+", line):
                assert "#" in line, (n, line)
    l2 = energy.load_model("loihi2_public")
    assert not l2.has_figures and "no public per-operation" in l2.statement
    bad = tmp_path / "bad.toml"
    bad.write_text('name="b"\ntitle="t"\nchip="c"\nstatus="s"\nsource="s"\n[snn.energy_pj]\nsynaptic_opp = 1.0\n')
    with pytest.raises(NeurodeployError, match="unknown snn operation 'synaptic_opp'"):
        energy.load_model(bad)
    bad.write_text('name="b"\ntitle="t"\nchip="c"\nstatus="s"\nsource="s"\n[snn.energy_pj]\nsynaptic_op = -1\n')
    with pytest.raises(NeurodeployError, match="non-negative"):
        energy.load_model(bad)
    bad.write_text("not toml [")
    with pytest.raises(NeurodeployError, match="not valid TOML"):
        energy.load_model(bad)


@pytest.mark.parametrize("ops,shape", [
    ([syn.Conv(np.ones((4, 2, 3, 2)), (2, 1), (1, 0), (1, 2))], (2, 9, 8)),
    ([syn.Conv(np.ones((6, 1, 3, 3)), (2, 2), (2, 2), (2, 2), 3)], (3, 9, 8)),
    ([syn.SumPool((2, 2), (2, 2)), syn.Conv(np.ones((3, 2, 1, 1)), (2, 2)), syn.Flatten()], (2, 11, 7)),
    ([syn.SumPool((3, 3), (1, 1), (1, 1))], (2, 5, 6)),
    ([syn.SumPool((1, 1), (1, 1))], (2, 5, 6)),
    ([syn.MaxPool((3, 3), (2, 2)), syn.ChannelScale(np.ones(2))], (2, 7, 6)),
    ([syn.SumPool((4, 4), (4, 4)), syn.Flatten(), syn.Dense(np.ones((5, 8)))], (2, 8, 9)),
])
def test_output_shape_is_what_the_ops_compute(ops, shape):
    from neurodeploy.ir.synapse_ops import output_shape
    assert output_shape(ops, shape) == tuple(apply_ops(ops, torch.zeros((1,) + shape, dtype=torch.float64)).shape[1:])
