"""CIFAR-size networks with seeded random weights for the simulator benchmark (throughput, not accuracy).

    resnet("resnet18", act) / resnet("resnet20", act)

torchvision's BasicBlock ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max pool) at
3x32x32, or the CIFAR ResNet-20 (He et al.: 3 stages of 3 blocks, 16/32/64 channels).  Weights are
PyTorch's default initialisation from a seed; BatchNorm's statistics are then measured on real CIFAR images
(`calibrate_batchnorm`), so every pre-activation is about N(0, 1) and the activations are neither
all zero nor all saturated, as in a trained network.  `qcfs_resnet` swaps each ReLU for QCFS with λ
at the 99.9th percentile of its calibration inputs (`neurodeploy.nn.relu_to_qcfs`) behind a fixed
8-bit input quantiser; `reverb_resnet` builds the same network as a ReverB SNN (binary 3x3 convs in
the blocks, ReverB neurons).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neurodeploy.nn import QCFS, ReverBNeuron, SpikingSequential, relu_to_qcfs
from neurodeploy.nn.reverb import ReverBBasicBlock

STAGES = {"resnet18": ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)),     # (width, blocks, stride)
          "resnet20": ((16, 3, 1), (32, 3, 2), (64, 3, 2))}


def cifar_images(path, split: str, n: int) -> np.ndarray:
    """The first n images of the split of cifar10_subset.npz as float32 (N, 3, 32, 32) in [0, 1]."""
    with np.load(path) as d:
        x = d[f"{split}_x"][:n]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
        self.act2 = nn.ReLU()

    def forward(self, x):
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + self.shortcut(x))


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Every BatchNorm's running mean/var := the statistics of its input on x (one pass in train mode,
    cumulative average), γ = 1, β = 0; the model is left in eval mode."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
            m.momentum = None
    model.train()
    model(x)
    model.eval()


def resnet(arch: str, seed: int = 0) -> nn.Sequential:
    """The ReLU network (stem, blocks, global average pool, linear 10), PyTorch's initialisation from seed."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, STAGES[arch][0][0], 3, 1, 1, bias=False), nn.BatchNorm2d(STAGES[arch][0][0]), nn.ReLU()]
    cin = STAGES[arch][0][0]
    for width, blocks, stride in STAGES[arch]:
        for b in range(blocks):
            layers.append(BasicBlock(cin, width, stride if b == 0 else 1))
            cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def qcfs_resnet(arch: str, x_cal: np.ndarray, levels: int = 7, seed: int = 0) -> nn.Sequential:
    """The ResNet with QCFS(levels) activations behind a fixed 8-bit input quantiser (QCFS(255, λ=1)
    on inputs in [0, 1]), BatchNorm calibrated on x_cal; eval mode."""
    model = resnet(arch, seed)
    x = torch.from_numpy(x_cal)
    calibrate_batchnorm(model, x)
    relu_to_qcfs(model, levels, x)
    return nn.Sequential(QCFS(255, init_lambda=1.0, trainable=False), *model).eval()


def reverb_resnet(arch: str, x_cal: np.ndarray, timesteps: int, seed: int = 0) -> SpikingSequential:
    """The ResNet as a ReverB SNN (`neurodeploy.nn`): real-valued stem conv, ReverBBasicBlocks (binary
    3x3 convs, real 1x1 shortcuts), average pool, real-valued linear read-out; BatchNorm calibrated on
    x_cal repeated over `timesteps` steps; eval mode."""
    torch.manual_seed(seed)
    width = STAGES[arch][0][0]
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), ReverBNeuron()]
    cin = width
    for w, blocks, stride in STAGES[arch]:
        for b in range(blocks):
            layers.append(ReverBBasicBlock(cin, w, stride if b == 0 else 1))
            cin = w
    side = 32 // int(np.prod([s for _, _, s in STAGES[arch]]))
    model = SpikingSequential(*layers, nn.AvgPool2d(side), nn.Flatten(), nn.Linear(cin, 10))
    x = torch.from_numpy(x_cal).unsqueeze(0).expand((timesteps,) + x_cal.shape)
    calibrate_batchnorm(model, x)
    return model


# --- the same convolutions as a trained-LIF-SNN-shaped NIR graph (the cuba scheme compiles LIF SNNs) ---

def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """conv then BatchNorm as one convolution's (weight, bias), float32."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    f = fuse_conv_bn_eval(conv.eval(), bn.eval())
    return f.weight.detach().numpy().astype(np.float32), f.bias.detach().numpy().astype(np.float32)


def lif_resnet_nir(arch: str, x_cal: np.ndarray, seed: int = 0, threshold: float = 1.0):
    """The ReLU ResNet of `resnet(arch, seed)` with BatchNorm calibrated on x_cal and folded into its
    convolutions, as a NIR graph (nir.NIRGraph) in which every ReLU is a CubaLIF neuron: the same
    convolutions, residual adds (a node with two input edges: the block's conv2 and its shortcut, a
    1x1 identity convolution where torchvision's is the identity) and global average pool + Affine into
    the Output (the float mean over the steps).  Neurons, under NIR's own reading with dt = 1e-4
    (`--nir-dt 1e-4`): tau_syn 2e-4 (alpha 0.5), tau_mem 5e-4 (beta 0.8), r 5, w_in 2 (input gain 1),
    v_threshold `threshold`.  Also returns the folded ReLU model (nn.Sequential, eval) whose
    convolutions these are: the ANN peer of the benchmark."""
    import nir
    model = resnet(arch, seed)
    calibrate_batchnorm(model, torch.from_numpy(x_cal))
    nodes, edges = {"input": nir.Input(input_type={"input": np.array([3, 32, 32])})}, []
    shape = {"input": (3, 32, 32)}

    def conv(name, src, w, b, stride, pad):
        c, h, wd = shape[src]
        nodes[name] = nir.Conv2d((h, wd), w, stride, pad, 1, 1, b)
        edges.append((src, name))
        shape[name] = (w.shape[0], (h + 2 * pad - w.shape[2]) // stride + 1, (wd + 2 * pad - w.shape[3]) // stride + 1)
        return name

    def lif(name, srcs):
        s = shape[srcs[0]]
        full = lambda v: np.full(s, v, dtype=np.float32)        # noqa: E731
        nodes[name] = nir.CubaLIF(tau_syn=full(2e-4), tau_mem=full(5e-4), r=full(5.0), v_leak=full(0.0),
                                  v_threshold=full(threshold), w_in=full(2.0))
        edges.extend((src, name) for src in srcs)
        shape[name] = s
        return name

    stem_conv, stem_bn = model[0], model[1]
    x = lif("lif0", [conv("conv0", "input", *_folded(stem_conv, stem_bn), 1, 1)])
    blocks = [m for m in model if isinstance(m, BasicBlock)]
    for i, blk in enumerate(blocks):
        stride = blk.conv1.stride[0]
        a = lif(f"b{i}_lif1", [conv(f"b{i}_conv1", x, *_folded(blk.conv1, blk.bn1), stride, 1)])
        main = conv(f"b{i}_conv2", a, *_folded(blk.conv2, blk.bn2), 1, 1)
        if isinstance(blk.shortcut, nn.Identity):
            c = shape[x][0]
            eye = np.eye(c, dtype=np.float32).reshape(c, c, 1, 1)
            skip = conv(f"b{i}_skip", x, eye, np.zeros(c, np.float32), 1, 0)
        else:
            skip = conv(f"b{i}_skip", x, *_folded(blk.shortcut[0], blk.shortcut[1]), stride, 0)
        x = lif(f"b{i}_lif2", [main, skip])
    c, h, w = shape[x]
    nodes["pool"] = nir.AvgPool2d(np.array([h, w]), np.array([h, w]), np.array([0, 0]))
    nodes["flat"] = nir.Flatten(input_type={"input": np.array([c, 1, 1])}, start_dim=0)
    fc = model[-1]
    nodes["fc"] = nir.Affine(fc.weight.detach().numpy().astype(np.float32), fc.bias.detach().numpy().astype(np.float32))
    nodes["output"] = nir.Output(output_type={"output": np.array([10])})
    edges += [(x, "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), model.eval()
