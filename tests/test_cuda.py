"""--device cuda gives the same bits as the CPU (runs only where a GPU exists)."""
import numpy as np
import pytest
import torch

from neurodeploy.compiler import compile_model
from neurodeploy.reports.verify import verify
from neurodeploy.sim import engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("model", ["digits_qcfs", "digits_resnet_qcfs"])
def test_cuda_matches_cpu_bit_for_bit(model):
    net = compile_model(f"models/{model}.onnx", "loihi2", "bitplane")
    x = np.load("models/digits_test_x.npy")
    y = np.load("models/digits_test_y.npy")
    cpu = engine.run_batch(engine.prepare(net, "cpu"), x)
    gpu = engine.run_batch(engine.prepare(net, "cuda"), x)
    assert torch.equal(cpu.output_state, gpu.output_state.cpu())
    for name in cpu.codes:
        assert torch.equal(cpu.codes[name], gpu.codes[name].cpu()), name
    r = verify(net, f"models/{model}.onnx", x, y, device="cuda")
    assert r["guarantee_holds"]
