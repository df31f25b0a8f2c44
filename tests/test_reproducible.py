"""`neurodeploy.reproducible`: the pinned float code path this session runs on (tests/conftest.py)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.reproducible import PINNED_ENV, numerics_settings, pin_cpu_numerics

ROOT = Path(__file__).resolve().parent.parent


def test_the_session_runs_on_the_pinned_path():
    assert numerics_settings() == {"aten_cpu_capability": "AVX2", "mkl_cbwr": "COMPATIBLE", "mkldnn": False,
                                   "nnpack": False, "sqrt": "1/rsqrt(x)", "threads": 1,
                                   "deterministic_algorithms": True}
    pin_cpu_numerics()                        # idempotent
    assert torch.get_num_threads() == 1


def test_sqrt_is_the_rounded_square_root_without_mkl_vml():
    x = torch.cat([torch.rand(100_000, generator=torch.Generator().manual_seed(0)) * 100,
                   torch.tensor([0.0, 1.0, 4.0, 1e-30, 3e38, float("inf")])])
    np.testing.assert_array_equal(torch.sqrt(x).numpy(), np.sqrt(x.numpy()))     # IEEE, correctly rounded
    d = torch.rand(10_000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 100
    ulps = np.abs(torch.sqrt(d).numpy().view(np.int64) - np.sqrt(d.numpy()).view(np.int64))
    assert ulps.max() <= 1                                                        # float64: 1/rsqrt, 1 ulp
    assert torch.isnan(torch.sqrt(torch.tensor(-1.0)))
    assert torch.sqrt(torch.tensor([4, 9])).tolist() == [2.0, 3.0]               # integers promote
    out = torch.empty(0)
    torch.sqrt(torch.tensor([25.0, 2.0]), out=out)
    t = torch.tensor([2.0])
    t.sqrt_()
    assert out[0] == 5.0 and out[1] == t[0] == np.sqrt(np.float32(2.0))
    v = torch.tensor([4.0, 2.0], requires_grad=True)
    torch.sqrt(v).sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), 0.5 / np.sqrt([4.0, 2.0]), rtol=1e-7)


def test_pinning_after_torch_computed_is_refused():
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
    code = ("import torch; torch.ones(4).sum(); "
            "from neurodeploy.reproducible import pin_cpu_numerics; pin_cpu_numerics()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode != 0 and "came too late" in r.stderr, r.stderr[-500:]


@pytest.mark.parametrize("env_var", ["ATEN_CPU_CAPABILITY=avx512", "OMP_NUM_THREADS=2", "MKL_CBWR=AUTO"])
def test_pinning_first_overrides_the_environment(env_var):
    name, value = env_var.split("=")
    env = {**os.environ, name: value}
    code = ("from neurodeploy.reproducible import pin_cpu_numerics, numerics_settings; pin_cpu_numerics(); "
            "s = numerics_settings(); print(s['aten_cpu_capability'], s['mkl_cbwr'], s['threads'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.split() == ["AVX2", "COMPATIBLE", "1"]
