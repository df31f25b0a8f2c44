"""Fuzzing: mutated ONNX models and input arrays may only raise NeurodeployError.

A bounded run (hypothesis, derandomized, fixed example counts) runs by default; the
`slow` marker runs many more cases in CI.  Each case counts itself so the totals can be
reported (`pytest -s` prints them).
"""
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netgen
from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError

BASE = netgen.conv_net(0, levels=(3, 8)).SerializeToString()
# an 8-bit QDQ model (QuantizeLinear/DequantizeLinear, int8 weights, int32 biases) for the sws import
QDQ_BASE = (Path(__file__).resolve().parents[1] / "models" / "digits_qat.onnx").read_bytes()
COUNT = {"models": 0, "qdq_models": 0, "arrays": 0}


def _mutate_bytes(data: bytes, positions, values) -> bytes:
    b = bytearray(data)
    for p, v in zip(positions, values):
        b[p % len(b)] = v
    return bytes(b)


def _mutate_graph(model: onnx.ModelProto, choice: int, k: int, value: float) -> onnx.ModelProto:
    g = model.graph
    n = len(g.node)
    if choice == 0 and n:                                  # drop a node
        del g.node[k % n]
    elif choice == 1 and n:                                # unknown op type
        g.node[k % n].op_type = ["Sigmoid", "Foo", "Conv", "Gemm", "Floor", "Add"][k % 6]
    elif choice == 2 and g.initializer:                    # poison a parameter
        t = g.initializer[k % len(g.initializer)]
        arr = onnx.numpy_helper.to_array(t).astype(np.float32).copy()
        if arr.size:
            arr.flat[k % arr.size] = value
        t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    elif choice == 3 and g.initializer:                    # reshape a parameter
        t = g.initializer[k % len(g.initializer)]
        arr = onnx.numpy_helper.to_array(t).reshape(-1)
        t.CopyFrom(onnx.numpy_helper.from_array(arr[: max(1, k % max(1, arr.size))].copy(), t.name))
    elif choice == 4 and n:                                # rewire an input
        node = g.node[k % n]
        if node.input:
            names = [o for m in g.node for o in m.output] + ["input", "nope"]
            node.input[0] = names[k % len(names)]
    elif choice == 5 and n:                                # mangle attributes
        node = g.node[k % n]
        for a in node.attribute:
            if a.ints:
                a.ints[k % len(a.ints)] = int(value) if np.isfinite(value) else -1
    elif choice == 6:                                      # change the input shape
        dims = g.input[0].type.tensor_type.shape.dim
        dims[1 + k % (len(dims) - 1)].dim_value = max(0, k % 11)
    return model


def _compile_bytes(tmp_path, data: bytes, scheme: str = "bitplane"):
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(data)
    try:
        compile_model(path, "loihi2", scheme)
    except NeurodeployError:
        pass


def _counted(check, n: int, counter: str):
    """A test running the hypothesis `check`; it fails unless at least half of the n cases ran
    (hypothesis stops early when it cannot generate distinct cases), and prints the count."""
    def test(tmp_path):
        before = COUNT[counter]
        check(tmp_path)
        ran = COUNT[counter] - before
        print(f"\nfuzz cases tried ({counter}): {ran}")
        assert ran >= n // 2, f"only {ran} of {n} {counter} cases ran"
    return test


def _fuzz_settings(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _models(n, base: bytes = BASE, scheme: str = "bitplane", counter: str = "models"):
    @_fuzz_settings(n)
    @given(st.integers(0, 7), st.integers(0, 10_000), st.sampled_from([np.nan, np.inf, -1e30, 1e30, 0.0, 3.0, -7.0]),
           st.lists(st.integers(0, 10**6), max_size=8), st.lists(st.integers(0, 255), max_size=8))
    def check(tmp_path, choice, k, value, positions, values):
        COUNT[counter] += 1
        if choice == 7:
            data = _mutate_bytes(base, positions, values)
        else:
            model = onnx.load_from_string(base)
            try:
                data = _mutate_graph(model, choice, k, value).SerializeToString()
            except (ValueError, TypeError, IndexError, OverflowError):
                return  # the mutation itself was impossible
        _compile_bytes(tmp_path, data, scheme)
    return _counted(check, n, counter)


test_fuzz_models = _models(60)
test_fuzz_models_long = pytest.mark.slow(_models(600))
test_fuzz_qdq_models = _models(40, QDQ_BASE, "sws", "qdq_models")
test_fuzz_qdq_models_long = pytest.mark.slow(_models(300, QDQ_BASE, "sws", "qdq_models"))


def _arrays(n):
    from neurodeploy.arrays import check_inputs, check_labels, load_npy

    @_fuzz_settings(n)
    @given(st.lists(st.integers(0, 9), min_size=0, max_size=5),
           st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "U3", "object"]),
           st.booleans(), st.integers(0, 64))
    def check(tmp_path, shape, dtype, poison, cut):
        COUNT["arrays"] += 1
        try:
            arr = np.zeros(shape, dtype=dtype)
        except (TypeError, ValueError):
            return
        if poison and arr.size and arr.dtype.kind == "f":
            arr.flat[0] = np.nan
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        data = buf.getvalue()
        if cut:
            data = data[:-cut]
        path = tmp_path / "x.npy"
        path.write_bytes(data)
        try:
            x = check_inputs(load_npy(path, "inputs"), (2, 8, 8), str(path))
            assert x.shape[1:] == (2, 8, 8) and np.all(np.isfinite(x))
            check_labels(load_npy(path, "labels"), len(x), str(path))
        except NeurodeployError:
            pass
    return _counted(check, n, "arrays")


test_fuzz_arrays = _arrays(60)
test_fuzz_arrays_long = pytest.mark.slow(_arrays(600))
