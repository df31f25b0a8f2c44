"""Float arithmetic that gives the same bits on every x86-64 CPU: `pin_cpu_numerics()`.

Training a network in float32 is chaotic: a last-bit difference in one gradient grows until the
trained weights differ everywhere (retrained on another CPU, the committed digits models moved
by up to 0.17 in a weight and 0.9 pp in accuracy).  PyTorch's CPU kernels pick their code path
per CPU, and each path rounds in its own way:

- MKL's BLAS (every matmul and, below, every convolution) dispatches per instruction set and
  vendor; its Conditional Numerical Reproducibility branch ``COMPATIBLE`` is the one documented
  for identical results on Intel and AMD;
- MKL's vector math (VML), behind ``torch.sqrt``: even in the COMPATIBLE branch its square root
  differs in the last bit between this Xeon and the same binary on an emulated AMD EPYC or
  Intel Haswell (qemu), so ``aten::sqrt`` is replaced on the CPU by ``1 / rsqrt(x)``, two IEEE
  operations (ATen's rsqrt is the CPU's exact square root and a division);
- oneDNN's convolutions pick an ISA and blockings from the CPU's vector width, cache sizes and
  thread count: switched off, so convolutions are im2col + MKL's BLAS; NNPACK likewise;
- ATen's own vectorised kernels (reductions, softmax, BatchNorm statistics, the optimisers) add
  8 float32 lanes with AVX2 and 16 with AVX-512: pinned to AVX2, which every x86-64 CPU of the
  last decade has (Intel Haswell, AMD Excavator and Zen, and later);
- numpy's OpenBLAS chooses a kernel per CPU model: pinned to its Haswell (AVX2) kernels;
- every threaded reduction splits its sum by thread count: one thread.

Checked op by op (matmuls, convolutions forward and backward, BatchNorm, pooling, softmax,
cross-entropy, exp/log/tanh/sigmoid/erf, Adam/AdamW/SGD, float32 and float64): the same bits
natively (AVX-512, AMX) and under qemu-x86_64 -cpu EPYC-Milan / Haswell, except two this module
does not pin because nothing here uses them: ``torch.log`` in float64 (MKL VML again) and numpy's
float64 exp/log (numpy's own AVX-512 loops; ``NPY_DISABLE_CPU_FEATURES`` before numpy is
imported would pin those).  ``python models/train_digits.py`` writes the same files natively and
under EPYC-Milan.

Cost, measured here (2 shared cores, `models/train_digits.py`'s 40 epochs, PyTorch 2.14): one
thread on the default kernels 4.0-4.2 s; pinned 4.2-4.4 s (+4%); pinned with ATen's unvectorised
kernels instead of AVX2 4.7-5.0 s; float64 training 4.6-4.9 s, and float64 alone is not the same
bits on another CPU.  Two threads on the loaded machine took 140-150 s: each of the many tiny
kernels ends in an OpenMP barrier that waits for a thread the OS has descheduled.

Call it before torch does any arithmetic (best: first thing in a script); it sets the
environment variables these libraries read when they first run, then checks that torch uses
the pinned path and raises ``RuntimeError`` if it was too late.  The training scripts in
``models/`` call it (retraining gives the committed files bit for bit) and so does the test suite
(tests/conftest.py).  It sets ``NEURODEPLOY_PIN_NUMERICS=1``, which makes ``neurodeploy``
commands started from the process pin themselves too.  onnxruntime has no such switch (its MLAS
kernels are chosen per CPU): comparisons with it need tolerances derived from float32 arithmetic.
"""
from __future__ import annotations

import os

__all__ = ["pin_cpu_numerics", "numerics_settings", "PINNED_ENV", "PIN_ENV_VAR"]

PIN_ENV_VAR = "NEURODEPLOY_PIN_NUMERICS"
# read by MKL, ATen and OpenBLAS when they first run (MKL_CBWR: the CNR branch; STRICT is not
# needed: a tensor's alignment is the same on every machine)
PINNED_ENV = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "avx2",
    "OPENBLAS_CORETYPE": "Haswell",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    PIN_ENV_VAR: "1",
}
_CBWR_NAMES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
               10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}  # mkl_cbwr.h
_sqrt_library = None        # the torch.library registration replacing aten::sqrt on the CPU


def pin_cpu_numerics() -> None:
    """Pin torch's (and numpy's BLAS) CPU float arithmetic to one code path on every x86-64 CPU.

    One thread, deterministic algorithms, MKL's CNR branch COMPATIBLE, no oneDNN/NNPACK, ATen's
    AVX2 kernels, a square root without MKL's VML.  Idempotent.  Raises RuntimeError on a CPU
    without AVX2, or when torch already ran on another path in this process."""
    os.environ.update(PINNED_ENV)
    import torch

    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        late = f"ATen uses {torch.backends.cpu.get_cpu_capability()} kernels"
        if not torch.cpu._is_avx2_supported():
            raise RuntimeError(f"pin_cpu_numerics: this CPU has no AVX2 ({late}); the pinned path needs it")
        raise RuntimeError(f"pin_cpu_numerics() came too late: {late} (torch had already computed in this "
                           "process); call it before torch runs, e.g. first thing in the script")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    _replace_cpu_sqrt(torch)
    branch = numerics_settings()["mkl_cbwr"]
    if branch not in (None, "COMPATIBLE"):
        raise RuntimeError(f"pin_cpu_numerics() came too late: MKL's reproducibility branch is {branch} "
                           "(MKL had already run in this process); call it before torch runs")


def _replace_cpu_sqrt(torch) -> None:
    """aten::sqrt on the CPU as ``1 / rsqrt(x)``: IEEE operations only, the same bits on every CPU
    (float64: at most 1 ulp from the rounded square root); sqrt(0) = 1/inf = 0, sqrt(inf) = 1/0 = inf."""
    global _sqrt_library
    if _sqrt_library is not None:
        return

    def sqrt(x):
        if not (x.is_floating_point() or x.is_complex()):
            x = x.to(torch.get_default_dtype())          # as torch.sqrt promotes integers
        if x.dtype in (torch.float32, torch.float16, torch.bfloat16):
            # in float64 then rounded once: the correctly rounded square root (measured on 10^6
            # values: no difference from numpy's), where 1/rsqrt in float32 is 1 ulp off for 13%
            return torch.reciprocal(torch.rsqrt(x.double())).to(x.dtype)
        return torch.reciprocal(torch.rsqrt(x))

    def sqrt_(x):
        return x.copy_(sqrt(x))

    def sqrt_out(x, *, out):
        r = sqrt(x)
        return out.resize_(r.shape).copy_(r)

    import warnings
    lib = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # "overriding a previously registered kernel"
        lib.impl("sqrt", sqrt, "CPU")
        lib.impl("sqrt_", sqrt_, "CPU")
        lib.impl("sqrt.out", sqrt_out, "CPU")
    _sqrt_library = lib


def _mkl_cbwr_branch(torch) -> int | None:
    """MKL's active CNR branch (3 = COMPATIBLE), or None where torch's MKL does not say."""
    import ctypes
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(get(1))        # 1 = MKL_CBWR_BRANCH


def numerics_settings() -> dict:
    """The float code path torch uses now (a model card records it next to the torch version).

    Asking fixes ATen's and MKL's choice for the process: call it after `pin_cpu_numerics`."""
    import torch

    branch = _mkl_cbwr_branch(torch)
    return {
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": None if branch is None else _CBWR_NAMES.get(branch, str(branch)),
        "mkldnn": bool(torch.backends.mkldnn.enabled),
        "nnpack": bool(torch._C._get_nnpack_enabled()),
        "sqrt": "1/rsqrt(x)" if _sqrt_library is not None else "aten (MKL VML)",
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
