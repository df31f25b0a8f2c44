"""Adversarial inputs: every input is validated at the boundary (issue #18, the inputs half).

Each case gives a command (in-process `neurodeploy.cli.main`, or the Python API) one bad, odd or
tampered input and asserts either a refusal -- exit status 2 and exactly one line on stderr
(naming the file / flag / layer), no traceback -- or an exact success (the same result as the
clean input).  Categories:

  arrays       the samples of simulate / verify / report: shape, dtype, finite, non-empty
  labels       verify / report labels: length, integers, each a class of the network
  calibration  --calibration / calibration=: shape vs the model input, finite, non-empty, not constant
  options      every option's type and range; options the scheme does not use; what meta records
  target       target TOML files: types, ranges, sections (one line naming the file and key)
  compiled     a compiled directory: checksums, the ir.json schema, every integer within the
               target's widths, shapes, graph (self-loops, cycles, duplicate names), caps
  model        verify / report --model: missing, garbage, another model (sha256), --allow-other-model

The module prints one summary line with the counts per category.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import MODELS, ROOT
import neurodeploy as nd
from neurodeploy.cli import main
from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import serialize
from neurodeploy.limits import MAX_IR_NESTING, MAX_LAYER_NEURONS, MAX_TIMESTEPS

sys.path.insert(0, str(ROOT / "models"))

ONNX = MODELS / "digits_qcfs.onnx"
X = np.load(MODELS / "digits_test_x.npy")[:16]
Y = np.load(MODELS / "digits_test_y.npy")[:16]
RAN: Counter = Counter()          # category -> cases that ran and held


# ------------------------------------------------------------------------------------------- helpers
def run_cli(argv) -> tuple[int, str, str]:
    """`neurodeploy ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:          # argparse's usage errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def refused(argv, *needles: str) -> str:
    """The command exits 2 with exactly one line on stderr (no traceback) holding every needle."""
    rc, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc}: {err[-3000:]}"
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
    return lines[0]


def api_refused(fn, *needles: str) -> str:
    """The API call raises one NeurodeployError whose message is one line holding every needle."""
    with pytest.raises(NeurodeployError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    return text


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def save(path: Path, arr) -> Path:
    np.save(path, arr, allow_pickle=isinstance(arr, np.ndarray) and arr.dtype == object)
    return path


def reseal(directory: Path, doc: dict) -> None:
    """Write `doc` as ir.json with freshly computed checksums (what a tool that edits the IR and knows
    the checksum rule would do): the schema and range checks must then catch the edit."""
    doc["checksums"] = {serialize.PARAMS_FILE: serialize.file_sha256(directory / serialize.PARAMS_FILE),
                        serialize.IR_FILE: serialize.content_sha256(doc)}
    (directory / serialize.IR_FILE).write_text(json.dumps(doc, indent=1))


def tamper(src: Path, dst: Path, edit, sealed: bool = True) -> Path:
    """A copy of the compiled directory `src` with edit(doc, arrays) applied to ir.json's document and
    params.npz's arrays; resealed unless `sealed` is False (then the checksums must catch it)."""
    shutil.copytree(src, dst)
    doc = json.loads((dst / serialize.IR_FILE).read_text())
    with np.load(dst / serialize.PARAMS_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    before = dict(arrays)
    edit(doc, arrays)
    if any(k not in before or arrays[k] is not before[k] for k in arrays) or len(arrays) != len(before):
        serialize._write_npz(dst / serialize.PARAMS_FILE, arrays)
    if sealed:
        reseal(dst, doc)
    else:
        (dst / serialize.IR_FILE).write_text(json.dumps(doc, indent=1))
    return dst


def layer(doc: dict, name: str) -> dict:
    return next(l for l in doc["layers"] if l["name"] == name)


def op_of(doc: dict, name: str, kind: str) -> dict:
    return next(op for op in layer(doc, name)["branches"][0]["ops"] if op["type"] == kind)


def weight_key(doc: dict, name: str) -> str:
    return next(op["weight"]["array"] for op in layer(doc, name)["branches"][0]["ops"] if "weight" in op)


def simulate_refused(d: Path, xfile: Path, *needles: str) -> str:
    return refused(["simulate", d, "--input", xfile, "--output", d.parent / f"{d.name}_out.npy"], *needles)


@pytest.fixture(scope="module", autouse=True)
def summary_line(request):
    """One line with the counts per category, printed at the end of the module."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    text = ", ".join(f"{c} {RAN[c]}" for c in CATEGORIES) + f"; {sum(RAN.values())} cases held"
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():       # shown even when output is captured
            reporter.write_line(f"\nadversarial inputs: {text}")


CATEGORIES = ("arrays", "labels", "calibration", "options", "target", "compiled", "model")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Compiled networks of every scheme and the clean samples, written once for the module."""
    root = tmp_path_factory.mktemp("adversarial")
    np.save(root / "x.npy", X)
    np.save(root / "y.npy", Y)
    dirs = {}
    for name, kw in {"bitplane": {}, "rate": {"scheme": "rate"}, "sws": {"scheme": "sws"},
                     "sdnn": {"scheme": "sdnn"}, "lossy": {"timesteps": 3, "lossy": True}}.items():
        dirs[name] = nd.compile(ONNX, **kw).save(root / name)
    import train_digits_lif
    import train_digits_reverb
    for scheme, module, weights in (("cuba", train_digits_lif, "digits_lif.pt"),
                                    ("reverb", train_digits_reverb, "digits_reverb.pt")):
        model = module.build_model()
        model.load_state_dict(torch.load(MODELS / weights, weights_only=True))
        dirs[scheme] = nd.compile(model.eval(), torch.from_numpy(X[:2]), scheme=scheme, timesteps=4,
                                  calibration=np.load(MODELS / "digits_test_x.npy")[:200]).save(root / scheme)
    out = nd.simulate(nd.load(dirs["bitplane"]), X)
    return {"root": root, "x": root / "x.npy", "y": root / "y.npy", "dirs": dirs, "out": out}


def held(category: str) -> None:
    RAN[category] += 1


# ------------------------------------------------------------------------------------------- arrays
ARRAY_CASES = {
    "wrong_shape_9x9": (np.zeros((4, 1, 9, 9), np.float32), "does not match the model input"),
    "no_batch_dim": (np.zeros((1, 8, 8), np.float32), "lacks the batch dimension"),
    "one_dimensional": (np.zeros(64, np.float32), "does not match"),
    "flattened": (np.zeros((4, 64), np.float32), "does not match"),
    "extra_dim": (np.zeros((4, 1, 1, 8, 8), np.float32), "does not match"),
    "empty": (np.zeros((0, 1, 8, 8), np.float32), "holds no samples"),
    "nan": (np.where(np.arange(256).reshape(4, 1, 8, 8) == 77, np.nan, 0.5).astype(np.float32), "NaN or Inf"),
    "inf": (np.full((4, 1, 8, 8), np.inf, np.float32), "NaN or Inf"),
    "minus_inf": (np.full((2, 1, 8, 8), -np.inf, np.float64), "NaN or Inf"),
    "complex": (np.zeros((2, 1, 8, 8), np.complex64), "not numeric"),
    "bool": (np.zeros((2, 1, 8, 8), bool), "not numeric"),
    "strings": (np.full((2, 1, 8, 8), "a"), "not numeric"),
    "structured": (np.zeros((2, 1, 8, 8), dtype=[("a", "f4"), ("b", "f4")]), "not numeric"),
    "objects": (np.array([[None]], dtype=object), "dtype=object"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_arrays_simulate_refuses(work, tmp_path, case):
    arr, needle = ARRAY_CASES[case]
    f = save(tmp_path / "x.npy", arr)
    simulate_refused(work["dirs"]["bitplane"], f, str(f), needle)
    assert not (work["dirs"]["bitplane"].parent / "bitplane_out.npy").exists()
    held("arrays")


ARRAY_FILES = {
    "missing": lambda p: p,
    "directory": lambda p: (p.mkdir(), p)[1],
    "garbage": lambda p: (p.write_bytes(b"\x93NUMPY garbage" * 3), p)[1],
    "npz": lambda p: (np.savez(p.with_suffix(".npz"), a=X), p.with_suffix(".npz"))[1],
    "truncated": lambda p: (p.write_bytes((MODELS / "digits_test_x.npy").read_bytes()[:1000]), p)[1],
    "empty_file": lambda p: (p.write_bytes(b""), p)[1],
}


@pytest.mark.parametrize("case", sorted(ARRAY_FILES))
def test_arrays_unreadable_files(work, tmp_path, case):
    f = ARRAY_FILES[case](tmp_path / "x.npy")
    simulate_refused(work["dirs"]["bitplane"], f, str(f))
    held("arrays")


@pytest.mark.parametrize("command", ["verify", "report"])
def test_arrays_refused_by_verify_and_report(work, tmp_path, command):
    f = save(tmp_path / "x.npy", np.full((3, 1, 8, 8), np.nan, np.float32))
    y = save(tmp_path / "y.npy", np.zeros(3, np.int64))
    extra = ["--model", ONNX] if command == "verify" else []
    refused([command, work["dirs"]["bitplane"], "--input", f, "--labels", y, *extra], "NaN or Inf")
    held("arrays")


def test_arrays_api_refuses_wrong_shapes_and_nan(work):
    net = nd.load(work["dirs"]["bitplane"])
    api_refused(lambda: nd.simulate(net, np.zeros((2, 1, 9, 9), np.float32)), "does not match")
    api_refused(lambda: nd.simulate(net, torch.full((2, 1, 8, 8), float("nan"))), "NaN or Inf")
    api_refused(lambda: nd.simulate(net, np.zeros((0, 1, 8, 8))), "no samples")
    held("arrays")


@pytest.mark.parametrize("dtype", ["float64", "int64", "uint8", "float16"])
def test_arrays_other_real_dtypes_give_the_float32_result(work, tmp_path, dtype):
    """Exact success: samples of another real dtype simulate to exactly what their float32 values give."""
    xs = (np.round(X * 8) / 8).astype(dtype) if dtype not in ("int64", "uint8") else np.round(X * 16).astype(dtype)
    want = nd.simulate(nd.load(work["dirs"]["bitplane"]), xs.astype(np.float32))
    f = save(tmp_path / "x.npy", xs)
    rc, _, err = run_cli(["simulate", work["dirs"]["bitplane"], "--input", f, "--output", tmp_path / "y.npy"])
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    held("arrays")


# ------------------------------------------------------------------------------------------- labels
LABEL_CASES = {
    "ten_of_ten_classes": (np.full(16, 10), "label 10 is not a class"),
    "minus_one": (np.r_[np.zeros(15, int), -1], "label -1 is not a class"),
    "ninety_nine": (np.full(16, 99), "label 99"),
    "huge": (np.full(16, 2 ** 40), "is not a class"),
    "too_short": (np.zeros(15, int), "expected (16,)"),
    "too_long": (np.zeros(17, int), "expected (16,)"),
    "two_dimensional": (np.zeros((16, 1), int), "expected (16,)"),
    "one_hot": (np.eye(10, dtype=int)[np.zeros(16, int)], "expected (16,)"),
    "fractional": (np.full(16, 1.5), "not integers"),
    "nan": (np.full(16, np.nan), "not integers"),
    "strings": (np.full(16, "3"), "not integers"),
    "bool": (np.zeros(16, bool), "not integers"),
    "float_out_of_range": (np.full(16, 12.0), "label 12"),
    "empty": (np.zeros(0, int), "expected (16,)"),
}


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
def test_labels_verify_refuses(work, tmp_path, case):
    arr, needle = LABEL_CASES[case]
    y = save(tmp_path / "y.npy", arr)
    refused(["verify", work["dirs"]["bitplane"], "--model", ONNX, "--input", work["x"], "--labels", y],
            str(y), needle)
    held("labels")


def test_labels_report_and_api_refuse_out_of_range(work, tmp_path):
    y = save(tmp_path / "y.npy", np.full(16, 10))
    refused(["report", work["dirs"]["bitplane"], "--input", work["x"], "--labels", y], "label 10")
    api_refused(lambda: nd.verify(nd.load(work["dirs"]["bitplane"]), ONNX, X, np.full(16, -1)), "label -1")
    held("labels")
    held("labels")


def test_labels_integral_floats_are_accepted(work, tmp_path):
    """Exact success: labels saved as integral floats verify exactly as the integer labels do."""
    y = save(tmp_path / "y.npy", Y.astype(np.float64))
    rc, out, err = run_cli(["verify", work["dirs"]["bitplane"], "--model", ONNX, "--input", work["x"],
                            "--labels", y, "--json"])
    rc2, out2, _ = run_cli(["verify", work["dirs"]["bitplane"], "--model", ONNX, "--input", work["x"],
                            "--labels", work["y"], "--json"])
    assert rc == rc2 == 0, err
    assert json.loads(out)["accuracy"] == json.loads(out2)["accuracy"]
    held("labels")


# ------------------------------------------------------------------------------------------- calibration
def _cal(shape=(32, 1, 8, 8), fill=None, dtype=np.float32):
    rng = np.random.default_rng(0)
    a = rng.random(shape).astype(dtype) if fill is None else np.full(shape, fill, dtype)
    return a


CALIBRATION_CASES = {
    "nan_sample": (lambda: np.where(np.arange(32 * 64).reshape(32, 1, 8, 8) == 5, np.nan, _cal()).astype(np.float32),
                   "NaN or Inf"),
    "inf_sample": (lambda: np.where(np.arange(32 * 64).reshape(32, 1, 8, 8) == 9, np.inf, _cal()).astype(np.float32),
                   "NaN or Inf"),
    "all_zero": (lambda: _cal(fill=0.0), "carry no range"),
    "all_half": (lambda: _cal(fill=0.5), "carry no range"),
    "all_minus_three": (lambda: _cal(fill=-3.0), "carry no range"),
    "shape_9x9": (lambda: _cal((32, 1, 9, 9)), "but the model's input is (N, 1, 8, 8)"),
    "channels_3": (lambda: _cal((32, 3, 8, 8)), "but the model's input"),
    "flattened": (lambda: _cal((32, 64)), "but the model's input"),
    "no_batch": (lambda: _cal((64,)), "lack the batch dimension"),
    "empty": (lambda: _cal((0, 1, 8, 8)), "holds no samples"),
    "strings": (lambda: np.full((4, 1, 8, 8), "x"), "not real numbers"),
    "bool": (lambda: np.ones((4, 1, 8, 8), bool), "not real numbers"),
    "complex": (lambda: _cal().astype(np.complex64), "not real numbers"),
}


@pytest.mark.parametrize("case,scheme", [(c, "rate") for c in sorted(CALIBRATION_CASES)] +
                         [(c, "bitplane") for c in ("nan_sample", "all_zero", "shape_9x9")])
def test_calibration_refused_on_the_command_line(work, tmp_path, case, scheme):
    make, needle = CALIBRATION_CASES[case]
    cal = save(tmp_path / "cal.npy", make())
    refused(["compile", ONNX, "--scheme", scheme, "--calibration", cal, "-o", tmp_path / "out"], needle)
    assert not (tmp_path / "out").exists()
    held("calibration")


CALIBRATION_FILES = {
    "missing": lambda p: p,
    "garbage": lambda p: (p.write_bytes(b"not an array"), p)[1],
    "npz": lambda p: (np.savez(p.with_suffix(".npz"), a=X), p.with_suffix(".npz"))[1],
}


@pytest.mark.parametrize("case", sorted(CALIBRATION_FILES))
def test_calibration_unreadable_files(tmp_path, case):
    f = CALIBRATION_FILES[case](tmp_path / "cal.npy")
    refused(["compile", ONNX, "--scheme", "rate", "--calibration", f, "-o", tmp_path / "out"], str(f))
    held("calibration")


def test_calibration_refused_by_compare(work, tmp_path):
    cal = save(tmp_path / "cal.npy", np.full((8, 1, 8, 8), np.nan, np.float32))
    refused(["compare", ONNX, "--input", work["x"], "--labels", work["y"], "--schemes", "rate",
             "--rate-timesteps", "4", "--calibration", cal, "-o", tmp_path / "cmp"], "NaN or Inf")
    assert not list(tmp_path.glob("cmp/rate_*"))
    held("calibration")


API_CALIBRATIONS = {
    "nan_array": (np.full((8, 1, 8, 8), np.nan, np.float32), "NaN or Inf"),
    "nan_tensor": (torch.full((8, 1, 8, 8), float("nan")), "NaN or Inf"),
    "zeros_tensor": (torch.zeros(8, 1, 8, 8), "carry no range"),
    "a_path_string": ("x.npy", "must be an array, not str"),
    "nested_lists": ([[0.0, 1.0], [0.5, 0.2]], "but the model's input"),
    "shape_9x9": (np.random.default_rng(1).random((8, 1, 9, 9)), "but the model's input"),
}


@pytest.mark.parametrize("case", sorted(API_CALIBRATIONS))
def test_calibration_refused_by_the_api(case):
    value, needle = API_CALIBRATIONS[case]
    api_refused(lambda: nd.compile(ONNX, scheme="rate", calibration=value), needle)
    held("calibration")


def test_calibration_nan_refused_for_trained_snns():
    import train_digits_reverb
    model = train_digits_reverb.build_model().eval()
    api_refused(lambda: nd.compile(model, torch.from_numpy(X[:2]), scheme="reverb",
                                   calibration=np.full((8, 1, 8, 8), np.nan, np.float32)), "NaN or Inf")
    held("calibration")


def test_calibration_valid_writes_finite_params_and_records_its_size(work, tmp_path):
    """Exact success: real samples compile; params.npz holds no NaN; meta records the sample count;
    integer samples give the same network as their float32 values."""
    cal = np.load(MODELS / "digits_test_x.npy")[:64]
    a = nd.compile(ONNX, scheme="rate", timesteps=8, calibration=cal).save(tmp_path / "a")
    b = nd.compile(ONNX, scheme="rate", timesteps=8, calibration=np.round(cal * 16).astype(np.int64) / 16).save(
        tmp_path / "b")
    with np.load(a / "params.npz") as z:
        assert all(np.all(np.isfinite(z[k])) for k in z.files)
    assert nd.load(a).graph.meta["options"]["calibration_samples"] == 64
    assert (a / "params.npz").read_bytes() == (b / "params.npz").read_bytes()
    held("calibration")


# ------------------------------------------------------------------------------------------- options
COMPILE_OPTION_CASES = {
    "rate_timesteps_0": (["--scheme", "rate", "--timesteps", "0"], "timesteps=0 out of range"),
    "rate_timesteps_negative": (["--scheme", "rate", "--timesteps", "-5"], "out of range"),
    "rate_timesteps_1e30": (["--scheme", "rate", "--timesteps", str(10 ** 30)], "out of range"),
    "rate_timesteps_over_cap": (["--scheme", "rate", "--timesteps", str(MAX_TIMESTEPS + 1)], "out of range"),
    "rate_timesteps_text": (["--scheme", "rate", "--timesteps", "many"], "invalid int value"),
    "rate_timesteps_fraction": (["--scheme", "rate", "--timesteps", "1.5"], "invalid int value"),
    "sws_coding_steps_0": (["--scheme", "sws", "--coding-steps", "0"], "coding_steps=0 out of range"),
    "sws_coding_steps_99": (["--scheme", "sws", "--coding-steps", "99"], "out of range"),
    "sws_silent_steps_negative": (["--scheme", "sws", "--silent-steps", "-1"], "out of range"),
    "sws_both_step_flags_disagree": (["--scheme", "sws", "--coding-steps", "4", "--timesteps", "6"], "disagree"),
    "rate_percentile_150": (["--scheme", "rate", "--percentile", "150"], "percentile=150.0 out of range"),
    "rate_percentile_nan": (["--scheme", "rate", "--percentile", "nan"], "not a finite number"),
    "rate_percentile_inf": (["--scheme", "rate", "--percentile", "inf"], "not a finite number"),
    "rate_percentile_negative": (["--scheme", "rate", "--percentile", "-1"], "out of range"),
    "sws_state_margin_nan": (["--scheme", "sws", "--state-margin", "nan"], "not a finite number"),
    "sws_state_margin_half": (["--scheme", "sws", "--state-margin", "0.5"], "out of range"),
    "sws_state_margin_inf": (["--scheme", "sws", "--state-margin", "inf"], "not a finite number"),
    "sws_beta_5": (["--scheme", "sws", "--beta", "5"], "invalid choice"),
    "input_bits_0": (["--input-bits", "0"], "input_bits=0 out of range"),
    "input_bits_17": (["--input-bits", "17"], "out of range"),
    "chips_0": (["--chips", "0"], "chips=0 out of range"),
    "chips_1e30": (["--chips", str(10 ** 30)], "out of range"),
    "chips_word": (["--chips", "many"], "pass a whole number of chips or 'auto'"),
    "bitplane_reset": (["--reset", "zero"], "has no option reset"),
    "bitplane_beta": (["--beta", "3"], "has no option beta"),
    "bitplane_payload_bits": (["--payload-bits", "99"], "has no option payload_bits"),
    "bitplane_three_foreign": (["--reset", "zero", "--beta", "3", "--payload-bits", "99"], "has no option"),
    "rate_lossy": (["--scheme", "rate", "--lossy"], "has no option lossy"),
    "sdnn_timesteps": (["--scheme", "sdnn", "--timesteps", "4"], "no --timesteps"),
    "sws_payload_bits": (["--scheme", "sws", "--payload-bits", "8"], "has no option payload_bits"),
    "rate_reset_none": (["--scheme", "rate", "--reset", "none"], "invalid choice"),
    "unknown_scheme": (["--scheme", "quantum"], "unknown scheme"),
    "unknown_flag": (["--turbo"], "unrecognized arguments"),
    "bitplane_more_timesteps": (["--timesteps", "9"], "is more than"),
    "bitplane_fewer_without_lossy": (["--timesteps", "3"], "add --lossy"),
    "unknown_target": (["--target", "loihi9"], "unknown target"),
}


@pytest.mark.parametrize("case", sorted(COMPILE_OPTION_CASES))
def test_options_refused_by_compile(tmp_path, case):
    flags, needle = COMPILE_OPTION_CASES[case]
    refused(["compile", ONNX, *flags, "-o", tmp_path / "out"], needle)
    assert not (tmp_path / "out").exists()
    held("options")


API_OPTION_CASES = {
    "timesteps_float": ({"scheme": "rate", "timesteps": 2.5}, "not an integer"),
    "timesteps_bool": ({"scheme": "rate", "timesteps": True}, "not an integer"),
    "timesteps_text": ({"scheme": "rate", "timesteps": "8"}, "not an integer"),
    "timesteps_zero": ({"scheme": "rate", "timesteps": 0}, "out of range"),
    "percentile_text": ({"scheme": "rate", "percentile": "high"}, "not a number"),
    "percentile_nan": ({"scheme": "rate", "percentile": float("nan")}, "not a finite number"),
    "beta_5": ({"scheme": "sws", "beta": 5}, "is not one of 2, 3"),
    "reset_none": ({"scheme": "rate", "reset": "none"}, "is not one of subtract, zero"),
    "state_bound_dynamic": ({"scheme": "sws", "state_bound": "dynamic"}, "is not one of static, calibrated"),
    "lossy_yes": ({"lossy": "yes"}, "not true or false"),
    "unknown_option": ({"turbo": 1}, "unknown option(s) turbo"),
    "foreign_option": ({"payload_bits": 8}, "has no option payload_bits"),
    "payload_bits_25": ({"scheme": "reverb", "payload_bits": 25}, "out of range"),
    "payload_bits_0": ({"scheme": "reverb", "payload_bits": 0}, "out of range"),
    "target_number": ({"target": 7}, "target must be a name or a path"),
    "scheme_unknown": ({"scheme": "quantum"}, "unknown scheme"),
}


@pytest.mark.parametrize("case", sorted(API_OPTION_CASES))
def test_options_refused_by_the_api(case):
    kw, needle = API_OPTION_CASES[case]
    api_refused(lambda: nd.compile(ONNX, **kw), needle)
    held("options")


RUN_OPTION_CASES = {
    "batch_size_0": (["--batch-size", "0"], "batch size 0"),
    "batch_size_negative": (["--batch-size", "-1"], "batch size -1"),
    "batch_size_1e30": (["--batch-size", str(10 ** 30)], "batch size 1000000000000000000000000000000"),
    "batch_size_text": (["--batch-size", "all"], "invalid int value"),
    "device_garbage": (["--device", "toaster"], "'toaster' is not a device"),
    "device_meta": (["--device", "meta"], "runs on cpu or cuda"),
    "device_gpu_99": (["--device", "cuda:99"], "--device"),
    "engine_unknown": (["--engine", "nengo"], "invalid choice"),
}


@pytest.mark.parametrize("case,command", [(c, cmd) for c in sorted(RUN_OPTION_CASES)
                                          for cmd in ("simulate", "verify", "report")
                                          if c != "engine_unknown" or cmd == "simulate"])   # --engine is simulate's
def test_options_refused_by_run_commands(work, tmp_path, case, command):
    flags, needle = RUN_OPTION_CASES[case]
    extra = {"simulate": ["--output", tmp_path / "y.npy"],
             "verify": ["--model", ONNX, "--labels", work["y"]], "report": []}[command]
    refused([command, work["dirs"]["bitplane"], "--input", work["x"], *extra, *flags], needle)
    assert not (tmp_path / "y.npy").exists()
    held("options")


def test_options_device_cuda_runs_where_a_gpu_is_and_is_refused_where_none_is(work, tmp_path):
    argv = ["simulate", work["dirs"]["bitplane"], "--input", work["x"], "--output", tmp_path / "y.npy",
            "--device", "cuda"]
    if torch.cuda.is_available():
        rc, _, err = run_cli(argv)
        assert rc == 0, err
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), work["out"])
    else:
        refused(argv, "no CUDA GPU is available")
    held("options")


def test_options_api_batch_size_and_device(work):
    net = nd.load(work["dirs"]["bitplane"])
    api_refused(lambda: nd.simulate(net, X, batch_size=0), "batch size 0")
    api_refused(lambda: nd.verify(net, ONNX, X, Y, batch_size=-3), "batch size -3")
    api_refused(lambda: nd.verify(net, ONNX, X, Y, device="tpu"), "'tpu' is not a device")
    held("options")


@pytest.mark.parametrize("case", ["index_bits_negative", "index_bits_65", "compare_sweep_zero",
                                  "compare_sweep_text", "compare_bad_target"])
def test_options_refused_by_report_and_compare(work, tmp_path, case):
    if case.startswith("index_bits"):
        value = "-1" if case.endswith("negative") else "65"
        refused(["report", work["dirs"]["bitplane"], "--input", work["x"], "--index-bits", value], "--index-bits")
    else:
        flags = {"compare_sweep_zero": ["--rate-timesteps", "0"], "compare_sweep_text": ["--rate-timesteps", "4,x"],
                 "compare_bad_target": ["--target", str(tmp_path / "none.toml")]}[case]
        needle = {"compare_sweep_zero": "rate_T0", "compare_sweep_text": "comma-separated",
                  "compare_bad_target": "unknown target"}[case]
        refused(["compare", ONNX, "--input", work["x"], "--labels", work["y"], "--schemes", "rate", *flags,
                 "-o", tmp_path / "cmp"], needle)
        assert not list((tmp_path / "cmp").glob("rate_*")) if (tmp_path / "cmp").exists() else True
    held("options")


def test_options_metadata_records_what_each_scheme_used(work):
    """Exact success: meta["options"] holds the chosen scheme's options only, with the values its flow
    used (an omitted --timesteps resolved), besides target, scheme, chips and calibration_samples."""
    want = {
        "bitplane": {"timesteps": 5, "input_bits": 8, "lossy": False},
        "lossy": {"timesteps": 3, "input_bits": 8, "lossy": True},
        "rate": {"timesteps": 32, "input_bits": 8, "reset": "subtract", "percentile": 99.9},
        "sws": {"input_bits": 8, "percentile": 99.9, "coding_steps": 8, "silent_steps": 2, "beta": 2,
                "full_threshold": False, "state_bound": "static", "state_margin": None},
        "sdnn": {"input_bits": 8, "percentile": 99.9},
        "cuba": {"timesteps": 4, "input_bits": 8},
        "reverb": {"timesteps": 4, "input_bits": 8, "payload_bits": 16},
    }
    for name, d in work["dirs"].items():
        opts = nd.load(d).graph.meta["options"]
        scheme = "bitplane" if name == "lossy" else name
        calibrated = 200 if name in ("cuba", "reverb") else None
        assert opts == {"target": "loihi2", "scheme": scheme, "chips": 1, "calibration_samples": calibrated,
                        **want[name]}, (name, opts)
    held("options")


def test_options_sws_timesteps_is_recorded_as_coding_steps(tmp_path):
    """Exact success: sws --timesteps 6 is its Tc; meta records coding_steps 6 (and no timesteps)."""
    net = nd.compile(ONNX, scheme="sws", timesteps=6)
    assert net.graph.meta["options"]["coding_steps"] == 6 and "timesteps" not in net.graph.meta["options"]
    assert net.graph.input.neuron.coding_steps == 6
    held("options")


# ------------------------------------------------------------------------------------------- target files
LOIHI2 = (ROOT / "targets" / "loihi2.toml").read_text()


def _toml_edit(old: str, new: str):
    def make(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return make


TARGET_CASES = {
    "mant_bits_zero": (_toml_edit("mant_bits = 8", "mant_bits = 0"), "[weights] mant_bits = 0 is out of range"),
    "mant_bits_negative": (_toml_edit("mant_bits = 8", "mant_bits = -3"), "[weights] mant_bits = -3"),
    "mant_bits_string": (_toml_edit("mant_bits = 8", 'mant_bits = "8"'), "must be an integer"),
    "mant_bits_float": (_toml_edit("mant_bits = 8", "mant_bits = 8.0"), "must be an integer"),
    "state_bits_bool": (_toml_edit("state_bits = 24", "state_bits = true"), "[neuron] state_bits = True"),
    "state_bits_64": (_toml_edit("state_bits = 24", "state_bits = 64"), "out of range"),
    "exp_min_above_max": (_toml_edit("exp_min = -8", "exp_min = 9"), "is above exp_max"),
    "no_neuron_section": (_toml_edit("[neuron]", "[neuron_x]"), "lacks the section [neuron]"),
    "no_payload_bits": (_toml_edit("payload_bits = 24", "payload_bytes = 3"), "lacks the key [spikes] payload_bits"),
    "chip_not_a_table": (lambda t: t.split("[chip]")[0].replace('name = "loihi2"', 'name = "loihi2"\nchip = 5'),
                         "[chip] must be a table"),
    "cores_negative": (_toml_edit("cores_per_chip = 128", "cores_per_chip = -1"), "cores_per_chip = -1"),
    "name_number": (_toml_edit('name = "loihi2"', "name = 5"), "name = 5 must be a string"),
    "name_empty": (_toml_edit('name = "loihi2"', 'name = " "'), "name is empty"),
    "graded_text": (_toml_edit("graded = true", 'graded = "yes"'), "must be true or false"),
    "not_toml": (lambda t: "[weights\nmant_bits = = 8", "not valid TOML"),
    "lif_act_shift_negative": (_toml_edit("lif_act_shift = 6", "lif_act_shift = -1"), "lif_act_shift = -1"),
    "binary_weight_bits_zero": (_toml_edit("binary_weight_bits = 2", "binary_weight_bits = 0"),
                                "binary_weight_bits = 0"),
    "v_th_mant_bits_zero": (_toml_edit("v_th_mant_bits = 17", "v_th_mant_bits = 0"), "v_th_mant_bits = 0"),
    "decay_bits_zero": (_toml_edit("decay_bits = 12", "decay_bits = 0"), "decay_bits = 0"),
    "bias_exp_max_negative": (_toml_edit("bias_exp_max = 7", "bias_exp_max = -1"), "bias_exp_max = -1"),
    "description_number": (_toml_edit('description = "Intel', 'description = 3\nx = "Intel'),
                           "description = 3 must be a string"),
    "weights_array": (_toml_edit("[weights]", "weights = [1, 2]\n[weights_x]"), "[weights] must be a table"),
}


@pytest.mark.parametrize("case", sorted(TARGET_CASES))
def test_target_files_refused_naming_file_and_key(tmp_path, case):
    make, needle = TARGET_CASES[case]
    f = tmp_path / "chip.toml"
    f.write_text(make(LOIHI2))
    line = refused(["compile", ONNX, "--target", f, "-o", tmp_path / "out"], str(f), needle)
    assert "Traceback" not in line and not (tmp_path / "out").exists()
    held("target")


@pytest.mark.parametrize("case", ["non_utf8", "directory", "missing"])
def test_target_unreadable(tmp_path, case):
    f = tmp_path / "chip.toml"
    if case == "non_utf8":
        f.write_bytes(b"name = \"\xff\xfe\"\n")
    elif case == "directory":
        f.mkdir()
    refused(["compile", ONNX, "--target", f, "-o", tmp_path / "out"], str(f))
    held("target")


def test_target_a_valid_copy_compiles_exactly_as_loihi2(tmp_path):
    """Exact success: a copy of loihi2.toml under another path gives the same params.npz."""
    f = tmp_path / "copy.toml"
    f.write_text(LOIHI2)
    rc, _, err = run_cli(["compile", ONNX, "--target", f, "-o", tmp_path / "a"])
    rc2, _, _ = run_cli(["compile", ONNX, "-o", tmp_path / "b"])
    assert rc == rc2 == 0, err
    assert (tmp_path / "a" / "params.npz").read_bytes() == (tmp_path / "b" / "params.npz").read_bytes()
    held("target")


def test_target_refused_by_the_api_and_compare(work, tmp_path):
    f = tmp_path / "chip.toml"
    f.write_text(LOIHI2.replace("mant_bits = 8", "mant_bits = 0", 1))
    api_refused(lambda: nd.compile(ONNX, target=str(f)), "mant_bits = 0")
    refused(["compare", ONNX, "--input", work["x"], "--labels", work["y"], "--target", f, "-o", tmp_path / "c"],
            "mant_bits = 0")
    held("target")
    held("target")


# ------------------------------------------------------------------------------------------- compiled directories
def _set(path: list, value):
    def edit(doc, arrays):
        obj = doc
        for key in path[:-1]:
            obj = obj[key] if not callable(key) else key(obj)
        obj[path[-1]] = value
    return edit


def _neuron(name: str, field: str, value):
    return lambda doc, arrays: layer(doc, name)["neuron"].__setitem__(field, value)


def _array(name: str, make):
    """Replace a layer's weight array in params.npz by make(old)."""
    def edit(doc, arrays):
        key = weight_key(doc, name)
        arrays[key] = make(arrays[key])
    return edit


def _layer_array(layer_name: str, field: str, make):
    def edit(doc, arrays):
        key = layer(doc, layer_name)[field]["array"]
        arrays[key] = make(arrays[key])
    return edit


def _layers(fn):
    return lambda doc, arrays: doc.__setitem__("layers", fn(doc["layers"]))


def _branch(name: str, field: str, value):
    return lambda doc, arrays: layer(doc, name)["branches"][0].__setitem__(field, value)


def _nest(depth: int):
    def edit(doc, arrays):
        deep = 0
        for _ in range(depth):
            deep = [deep]
        doc["meta"]["dict"]["notes"] = deep
    return edit


def _readout_swap(doc, arrays):
    doc["layers"][1], doc["layers"][-1] = doc["layers"][-1], doc["layers"][1]


# (compiled dir, edit, needle): every edit resealed, so the schema and range checks must catch it
SEALED_CASES = {
    "weight_mantissa_1000": ("bitplane", _array("conv1", lambda w: w * 0 + 1000), "holds 1000, out of range -127..127"),
    "weight_mantissa_2_40": ("bitplane", _array("readout", lambda w: w * 0 + 2 ** 40), "out of range -127..127"),
    "weights_not_integers": ("bitplane", _array("conv2", lambda w: w + 0.5), "must hold integers, not float64"),
    "weights_wrong_shape": ("bitplane", _array("conv1", lambda w: np.zeros((8, 2, 3, 3), np.int64)),
                            "does not read 1 channels"),
    "dense_weight_wrong_inputs": ("bitplane", _array("readout", lambda w: np.zeros((10, 65), np.int64)),
                                  "expected (outputs, 64)"),
    "weights_rank_1": ("bitplane", _array("conv1", lambda w: w.ravel()), "does not read"),
    "v_th_mant_0": ("bitplane", _neuron("conv1", "v_th_mant", 0), "BitplaneIF.v_th_mant = 0 is out of range 1..131071"),
    "v_th_mant_negative": ("bitplane", _neuron("conv1", "v_th_mant", -5), "is out of range"),
    "v_th_mant_2_40": ("bitplane", _neuron("conv2", "v_th_mant", 2 ** 40), "is out of range"),
    "v_th_mant_string": ("bitplane", _neuron("conv1", "v_th_mant", "12"), "must be an integer, not str"),
    "v_th_mant_float": ("bitplane", _neuron("conv1", "v_th_mant", 12.0), "must be an integer, not float"),
    "v_th_mant_bool": ("bitplane", _neuron("conv1", "v_th_mant", True), "must be an integer, not bool"),
    "v_th_mant_null": ("bitplane", _neuron("conv1", "v_th_mant", None), "must be an integer, not NoneType"),
    "code_max_needs_more_planes": ("bitplane", _neuron("conv1", "code_max", 31), "needs more than its n_steps"),
    "bias_exp_100": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("bias_exp", 100),
                     "Layer.bias_exp = 100 is out of range 0..7"),
    "bias_exp_negative": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("bias_exp", -1), "out of range"),
    "bias_mant_huge": ("bitplane", _layer_array("conv2", "bias_mant", lambda b: b * 0 + 10 ** 6), "holds 1000000"),
    "bias_mant_wrong_length": ("bitplane", _layer_array("conv2", "bias_mant", lambda b: b[:3]),
                               "bias_mant: has shape (3,), expected (16,)"),
    "weight_exp_99": ("bitplane", _branch("conv2", "weight_exp", 99), "Branch.weight_exp = 99 is out of range 0..7"),
    "input_shape_9x9": ("bitplane", lambda d, a: d["layers"][0].__setitem__("shape", {"tuple": [1, 9, 9]}),
                        "produces shape (8, 9, 9), but the layer is shaped (8, 8, 8)"),
    "layer_shape_zero": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("shape", {"tuple": [0, 8, 8]}),
                         "every size >= 1"),
    "layer_shape_huge": ("bitplane", lambda d, a: d["layers"][0].__setitem__("shape", {"tuple": [1, 100000, 100000]}),
                         f"more than {MAX_LAYER_NEURONS} neurons"),
    "layer_shape_text": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("shape", "8x8x8"),
                         "must be a tuple"),
    "encoder_n_steps_0": ("bitplane", _neuron("input", "n_steps", 0), "BitplaneEncoder.n_steps = 0 is out of range"),
    "encoder_n_steps_1e8": ("bitplane", _neuron("input", "n_steps", 10 ** 8), f"out of range 1..{MAX_TIMESTEPS}"),
    "rate_T_1e9": ("rate", lambda d, a: d["layers"][0]["neuron"].update(n_steps=10 ** 9, code_max=10 ** 9),
                   "out of range"),
    "rate_bias_steps_1e9": ("rate", _neuron("conv1", "bias_steps", 10 ** 9), "RateIF.bias_steps"),
    "rate_reset_unknown": ("rate", _neuron("conv1", "reset", "explode"), "must be one of 'subtract', 'zero'"),
    "rate_v_init_negative": ("rate", _neuron("conv1", "v_init", -1), "RateIF.v_init = -1"),
    "rate_code_max_not_T": ("rate", _neuron("input", "code_max", 7), "differs from n_steps"),
    "sws_beta_5": ("sws", _neuron("conv1", "beta", 5), "TSA.beta = 5 is out of range 2..3"),
    "sws_coding_steps_100": ("sws", _neuron("conv1", "coding_steps", 100), "TSA.coding_steps = 100"),
    "sws_code_max_beyond_digits": ("sws", _neuron("input", "code_max", 256), "exceeds the 255 that 8 digits"),
    "sws_relu_text": ("sws", _neuron("conv1", "relu", "yes"), "must be true or false"),
    "sdnn_hidden_weight_exp": ("sdnn", _branch("conv2", "weight_exp", 9), "Branch.weight_exp = 9 is out of range 0..7"),
    "sdnn_input_shift_40": ("sdnn", _branch("conv1", "weight_exp", 40), "out of range 0..16"),
    "sdnn_vth_negative": ("sdnn", _neuron("conv1", "vth", -1), "SigmaDelta.vth = -1"),
    "sdnn_bias_17_bits": ("sdnn", _layer_array("conv1", "bias_mant", lambda b: b * 0 + 40000), "holds 40000"),
    "reverb_payload_bits_40": ("reverb", _neuron("conv1", "payload_bits", 40), "ReverbNeuron.payload_bits = 40"),
    "reverb_dv_5000": ("reverb", _neuron("conv1", "dv", 5000), "ReverbNeuron.dv = 5000 is out of range 0..4095"),
    "reverb_out_mant_negative": ("reverb", lambda d, a: a.__setitem__(
        layer(d, "conv1")["neuron"]["out_mant"]["array"], np.full(16, -3, np.int64)), "holds -3"),
    "reverb_threshold_wrong_channels": ("reverb", lambda d, a: a.__setitem__(
        layer(d, "conv1")["neuron"]["v_th_mant"]["array"], np.zeros(5, np.int64)), "fits neither the channels"),
    "cuba_du_5000": ("cuba", _neuron("conv1", "du", 5000), "CubaLIF.du = 5000"),
    "cuba_dv_negative": ("cuba", _neuron("conv1", "dv", -1), "CubaLIF.dv = -1"),
    "cuba_timesteps_0": ("cuba", _neuron("input", "timesteps", 0), "CubaEncoder.timesteps = 0"),
    "no_layers": ("bitplane", _layers(lambda ls: []), "needs an input encoder"),
    "encoder_only": ("bitplane", _layers(lambda ls: ls[:1]), "needs an input encoder"),
    "duplicate_names": ("bitplane", lambda d, a: layer(d, "conv2").__setitem__("name", "conv1"),
                        "used by an earlier layer"),
    "self_loop": ("bitplane", _branch("conv2", "source", "conv2"), "a self-loop"),
    "cycle": ("bitplane", _branch("conv1", "source", "conv2"), "not an earlier layer (unknown, or a cycle)"),
    "unknown_source": ("bitplane", _branch("conv1", "source", "ghost"), "reads 'ghost'"),
    "no_branches": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("branches", []), "has no input branches"),
    "no_ops": ("bitplane", _branch("conv1", "ops", []), "has no synapse ops"),
    "two_weighted_ops": ("bitplane", lambda d, a: layer(d, "conv2")["branches"][0]["ops"].append(
        {"type": "Dense", "weight": {"array": weight_key(d, "readout")}}), "has 2 weighted ops"),
    "readout_not_last": ("bitplane", _readout_swap, "readout must be the last layer"),
    "last_not_readout": ("bitplane", _layers(lambda ls: ls[:-1]), "the last layer must be a readout"),
    "encoder_is_a_layer": ("bitplane", _layers(lambda ls: ls[1:]), "expected the input encoder"),
    "neuron_of_another_scheme": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__(
        "neuron", {"type": "RateIF", "v_th_mant": 5, "code_max": 15}), "RateIF is not one of this scheme's"),
    "in_scale_nan": ("bitplane", lambda d, a: a.__setitem__("layers.0.in_scale", np.array([np.nan])),
                     "must be finite"),
    "in_scale_negative": ("bitplane", lambda d, a: a.__setitem__("layers.0.in_scale", np.array([-4.0])),
                          "must be positive"),
    "output_scale_zero": ("bitplane", _neuron("readout", "output_scale", 0.0), "Readout.output_scale = 0.0 must be positive"),
    "output_scale_nan": ("bitplane", _neuron("readout", "output_scale", float("nan")), "must be finite"),
    "value_step_negative": ("bitplane", _layer_array("conv1", "value_step", lambda v: -v), "must not be negative"),
    "conv_stride_0": ("bitplane", lambda d, a: op_of(d, "conv1", "Conv").__setitem__("stride", {"tuple": [0, 1]}),
                      "Conv.stride"),
    "conv_groups_0": ("bitplane", lambda d, a: op_of(d, "conv1", "Conv").__setitem__("groups", 0), "Conv.groups = 0"),
    "conv_padding_negative": ("bitplane", lambda d, a: op_of(d, "conv1", "Conv").__setitem__(
        "padding", {"tuple": [-1, 1]}), "Conv.padding"),
    "pool_kernel_0": ("bitplane", lambda d, a: op_of(d, "conv2", "SumPool").__setitem__(
        "kernel", {"tuple": [0, 2]}), "SumPool.kernel"),
    "pool_leaves_nothing": ("bitplane", lambda d, a: op_of(d, "conv2", "SumPool").__setitem__(
        "kernel", {"tuple": [20, 20]}), "leaves nothing"),
    "name_empty": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("name", ""), "must be a name"),
    "name_number": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("name", 5), "must be a string"),
    "latency_1e9": ("bitplane", lambda d, a: d["meta"]["dict"].__setitem__("latency_steps", 10 ** 9),
                    "meta.latency_steps"),
    "target_spec_state_bits_0": ("bitplane", lambda d, a: d["meta"]["dict"]["target_spec"]["dict"]["neuron"]["dict"]
                                 .__setitem__("state_bits", 0), "meta.target_spec"),
    "target_name_mismatch": ("bitplane", lambda d, a: d.__setitem__("target", "cpu"), "is not the network's 'cpu'"),
    "unknown_type": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("neuron", {"type": "Evil"}),
                     "unknown type 'Evil'"),
    "unknown_field": ("bitplane", _neuron("conv1", "evil", 1), "has no field 'evil'"),
    "missing_field": ("bitplane", lambda d, a: layer(d, "conv1")["neuron"].pop("v_th_mant"),
                      "lacks its field 'v_th_mant'"),
    "missing_array": ("bitplane", lambda d, a: a.pop(weight_key(d, "conv1")), "which params.npz does not hold"),
    "tuple_of_a_number": ("bitplane", lambda d, a: layer(d, "conv1").__setitem__("shape", {"tuple": 5}),
                          "a tuple must hold a list"),
    "dict_of_a_list": ("bitplane", lambda d, a: d["meta"].__setitem__("dict", []), "a dict must hold an object"),
    "object_without_type": ("bitplane", lambda d, a: d["layers"].insert(1, {"foo": 1}), "is no IR value"),
    "layers_an_object": ("bitplane", lambda d, a: d.__setitem__("layers", {"a": 1}), "layers must be a JSON list"),
    "meta_a_list": ("bitplane", lambda d, a: d.__setitem__("meta", [1]), "meta must be a JSON dict"),
    "nesting_beyond_cap": ("bitplane", _nest(MAX_IR_NESTING + 5), f"more than {MAX_IR_NESTING} levels"),
    "unknown_scheme": ("bitplane", lambda d, a: d.__setitem__("scheme", "quantum"), "scheme 'quantum'"),
    "unknown_top_key": ("bitplane", lambda d, a: d.__setitem__("extra", 1), "unknown key 'extra'"),
    "ir_version_1": ("bitplane", lambda d, a: d.__setitem__("ir_version", 1), "IR version 1"),
    "format_other": ("bitplane", lambda d, a: d.__setitem__("format", "onnx"), "not a neurodeploy IR file"),
    "lossy_reference_layers": ("lossy", lambda d, a: d["meta"]["dict"]["reference_layers"][1]["neuron"].__setitem__(
        "v_th_mant", 0), "meta.reference_layers: layer 'conv1'"),
}


@pytest.mark.parametrize("case", sorted(SEALED_CASES))
def test_compiled_tampered_and_resealed_is_refused(work, tmp_path, case):
    which, edit, needle = SEALED_CASES[case]
    d = tamper(work["dirs"][which], tmp_path / "net", edit)
    simulate_refused(d, work["x"], needle)
    held("compiled")


def test_compiled_rate_with_a_billion_steps_is_refused_without_running(work, tmp_path):
    """A rate network edited to T = 1e9 is refused at load (it used to run for ever)."""
    d = tamper(work["dirs"]["rate"], tmp_path / "net",
               lambda doc, a: [l["neuron"].update(n_steps=10 ** 9, code_max=10 ** 9) if i == 0 else
                               l["neuron"].update(code_max=10 ** 9, bias_steps=10 ** 9)
                               for i, l in enumerate(doc["layers"]) if l["neuron"]["type"] != "Readout"])
    for command in ("simulate", "report", "export"):
        extra = {"simulate": ["--input", work["x"], "--output", tmp_path / "y.npy"],
                 "report": ["--input", work["x"]], "export": ["--format", "nir", "-o", tmp_path / "n.nir"]}[command]
        refused([command, d, *extra], "out of range")
    held("compiled")


UNSEALED_CASES = {
    "weight_edited": (_array("conv1", lambda w: w + 1), "params.npz was modified after compile"),
    "threshold_edited": (_neuron("conv1", "v_th_mant", 100), "ir.json was modified after compile"),
    "meta_edited": (lambda d, a: d["meta"]["dict"].__setitem__("latency_steps", 1), "ir.json was modified"),
    "checksums_dropped": (lambda d, a: d.pop("checksums"), "lacks the key 'checksums'"),
    "checksum_short": (lambda d, a: d.__setitem__("checksums", {"ir.json": "00", "params.npz": "11"}),
                       "no valid checksum"),
    "checksums_a_list": (lambda d, a: d.__setitem__("checksums", []), "checksums must be a JSON dict"),
}


@pytest.mark.parametrize("case", sorted(UNSEALED_CASES))
def test_compiled_edited_after_compile_is_named_as_such(work, tmp_path, case):
    edit, needle = UNSEALED_CASES[case]
    d = tamper(work["dirs"]["bitplane"], tmp_path / "net", edit, sealed=False)
    line = simulate_refused(d, work["x"], needle)
    assert "recompile" in line
    held("compiled")


RAW_CASES = {
    "params_truncated": ("params.npz", lambda b: b[: len(b) // 2], "params.npz was modified after compile"),
    "params_garbage": ("params.npz", lambda b: b"PK garbage", "params.npz was modified"),
    "params_empty": ("params.npz", lambda b: b"", "params.npz was modified"),
    "ir_truncated": ("ir.json", lambda b: b[: len(b) // 2], "not valid JSON"),
    "ir_empty": ("ir.json", lambda b: b"", "not valid JSON"),
    "ir_a_list": ("ir.json", lambda b: b"[1, 2, 3]", "holds a JSON list"),
    "ir_a_string": ("ir.json", lambda b: b'"ir"', "holds a JSON str"),
    "ir_binary": ("ir.json", lambda b: b"\xff\xfe\x00garbage", "not valid JSON"),
    "ir_deeply_nested": ("ir.json", lambda b: b"[" * 200000 + b"]" * 200000, "nests too deeply"),
    "ir_nan_literal": ("ir.json", lambda b: b"NaN", "holds a JSON float"),
}


@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_compiled_damaged_files(work, tmp_path, case):
    name, change, needle = RAW_CASES[case]
    d = tmp_path / "net"
    shutil.copytree(work["dirs"]["bitplane"], d)
    (d / name).write_bytes(change((d / name).read_bytes()))
    simulate_refused(d, work["x"], needle)
    held("compiled")


@pytest.mark.parametrize("case", ["no_params", "no_ir", "a_file", "missing_dir"])
def test_compiled_directory_missing_parts(work, tmp_path, case):
    d = tmp_path / "net"
    if case == "a_file":
        d.write_text("not a directory")
    elif case != "missing_dir":
        shutil.copytree(work["dirs"]["bitplane"], d)
        (d / ("params.npz" if case == "no_params" else "ir.json")).unlink()
    simulate_refused(d, work["x"], str(d))
    held("compiled")


@pytest.mark.parametrize("which", ["bitplane", "rate", "sws", "sdnn", "cuba", "reverb", "lossy"])
def test_compiled_untouched_and_resealed_directories_load(work, tmp_path, which):
    """Exact success: every scheme's directory loads; resealing an unchanged one, or re-indenting its
    ir.json (the checksum covers the content, not the bytes), changes nothing."""
    original = nd.load(work["dirs"][which])
    d = tamper(work["dirs"][which], tmp_path / "net", lambda doc, a: None)
    (d / "ir.json").write_text(json.dumps(json.loads((d / "ir.json").read_text()), indent=4, sort_keys=False))
    again = nd.load(d)
    np.testing.assert_array_equal(nd.simulate(again, X[:4]), nd.simulate(original, X[:4]))
    held("compiled")


def test_compiled_api_load_refuses_like_the_cli(work, tmp_path):
    d = tamper(work["dirs"]["bitplane"], tmp_path / "net", _neuron("conv1", "v_th_mant", 0))
    api_refused(lambda: nd.load(d), "BitplaneIF.v_th_mant = 0")
    api_refused(lambda: nd.simulate(str(d), X), "BitplaneIF.v_th_mant = 0")
    held("compiled")


# ------------------------------------------------------------------------------------------- verify --model
def _verify(work, model, *extra):
    return ["verify", work["dirs"]["bitplane"], "--model", model, "--input", work["x"], "--labels", work["y"], *extra]


def _other_onnx(tmp_path: Path, shape=(1, 1, 9, 9)) -> Path:
    """A valid ONNX model with another input shape (a Flatten + Gemm)."""
    import onnx
    from onnx import TensorProto, helper
    n = int(np.prod(shape[1:]))
    w = helper.make_tensor("w", TensorProto.FLOAT, [n, 10], np.zeros(n * 10, np.float32))
    g = helper.make_graph([helper.make_node("Flatten", ["input"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
                          "other", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape[1:]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [w])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


MODEL_CASES = {
    "missing": (lambda p: p / "nope.onnx", [], "file not found"),
    "a_directory": (lambda p: (p / "d.onnx").mkdir() or p / "d.onnx", [], "file not found"),
    "garbage": (lambda p: write(p / "g.onnx", b"garbage" * 20), [], "is not the model this network was compiled from"),
    "garbage_allowed": (lambda p: write(p / "g.onnx", b"garbage" * 20), ["--allow-other-model"],
                        "onnxruntime cannot run the model"),
    "empty_allowed": (lambda p: write(p / "e.onnx", b""), ["--allow-other-model"], "onnxruntime cannot run the model"),
    "another_model": (lambda p: MODELS / "digits_resnet_qcfs.onnx", [], "its sha256 differs"),
    "another_input_shape_allowed": (lambda p: _other_onnx(p), ["--allow-other-model"], "takes 1 input(s) shaped"),
    "another_input_shape": (lambda p: _other_onnx(p), [], "is not the model"),
    "text_file_allowed": (lambda p: write(p / "m.txt", b"hi"), ["--allow-other-model"], "unsupported model format"),
    "garbage_pt2": (lambda p: write(p / "m.pt2", b"PK\x03\x04 no"), [], "is not the model"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_model_refused_by_verify(work, tmp_path, case):
    make, extra, needle = MODEL_CASES[case]
    refused(_verify(work, make(tmp_path), *extra), needle)
    held("model")


def test_model_another_model_refused_by_report_and_the_api(work, tmp_path):
    other = MODELS / "digits_qat.onnx"
    refused(["report", work["dirs"]["bitplane"], "--input", work["x"], "--labels", work["y"], "--model", other],
            "is not the model")
    api_refused(lambda: nd.verify(nd.load(work["dirs"]["bitplane"]), other, X, Y), "allow_other_model=True")
    held("model")
    held("model")


def test_model_same_function_other_file_runs_only_when_allowed_and_says_so(work):
    """Exact success: the folded export of the same network is another file: refused by default; with
    --allow-other-model verify runs, gives the result of the compiled model, and says which it used."""
    folded = MODELS / "digits_qcfs_folded.onnx"
    refused(_verify(work, folded), "is not the model", "--allow-other-model")
    rc, out, err = run_cli(_verify(work, folded, "--allow-other-model", "--json"))
    rc0, out0, _ = run_cli(_verify(work, ONNX, "--json"))
    assert rc == rc0 == 0, err
    got, want = json.loads(out), json.loads(out0)
    assert got["model_is_compiled_one"] is False and "model_is_compiled_one" not in want
    assert [l["conversion_mismatches"] for l in got["layers"]] == [l["conversion_mismatches"] for l in want["layers"]]
    assert got["accuracy"]["snn"] == want["accuracy"]["snn"]
    assert "is not the model" in err and "--allow-other-model" in err
    held("model")


def test_model_changed_module_refused_by_the_api():
    """A module compiled, then its weights changed: verify refuses it (its tensors' digest differs)."""
    import train_digits_lif
    model = train_digits_lif.build_model()
    model.load_state_dict(torch.load(MODELS / "digits_lif.pt", weights_only=True))
    net = nd.compile(model.eval(), torch.from_numpy(X[:2]), scheme="cuba", timesteps=4,
                     calibration=np.load(MODELS / "digits_test_x.npy")[:200])
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    api_refused(lambda: nd.verify(net, model, X, Y), "not those the network was compiled from")
    held("model")


def test_every_ir_and_neuron_type_declares_its_fields(work):
    """The loader checks every field through its declaration: none may be left undeclared (a scheme's
    neuron that added an undeclared field would pass unchecked)."""
    from neurodeploy import registry
    from neurodeploy.ir.fields import undeclared_fields
    from neurodeploy.ir.validate import dataclass_types
    types = set(registry.neuron_types().values()) | set(serialize.known_types().values())
    for d in work["dirs"].values():
        types |= dataclass_types(nd.load(d).graph)
    assert {t.__name__: undeclared_fields(t) for t in types if undeclared_fields(t)} == {}


# ------------------------------------------------------------------------------------------- the counts
def case_counts() -> Counter:
    """Cases per category, from this module's test functions (test_<category>_...) and their
    parametrizations (the product of each parametrize's values)."""
    counts: Counter = Counter()
    for name, fn in globals().items():
        category = next((c for c in CATEGORIES if name.startswith(f"test_{c}_")), None)
        if category is None or not callable(fn):
            continue
        n = 1
        for mark in getattr(fn, "pytestmark", []):
            if mark.name == "parametrize":
                n *= len(mark.args[1])
        counts[category] += n
    return counts


def test_the_suite_has_its_cases():
    """At least 130 distinct cases over these categories, none of them empty."""
    counts = case_counts()
    print("adversarial input cases defined: " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES))
    assert all(counts[c] > 0 for c in CATEGORIES)
    assert sum(counts.values()) >= 130, counts
