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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reverb_cuda_matches_cpu_bit_for_bit(seed):
    """The reverb simulator's payload trains and readout state on the GPU equal the CPU's."""
    import reverb_netgen
    from neurodeploy.schemes.reverb import kernel as sim_reverb
    graph = reverb_netgen.random_graph(seed, t=4, payload_bits=16, per_neuron=bool(seed % 2))
    x = reverb_netgen.random_inputs(graph, 64, seed)
    cpu = sim_reverb.run(engine.prepare(graph, "cpu"), x)
    gpu = sim_reverb.run(engine.prepare(graph, "cuda"), x)
    assert torch.equal(cpu.readout_state, gpu.readout_state.cpu())
    for name in cpu.trains:
        assert torch.equal(cpu.trains[name], gpu.trains[name].cpu()), name
