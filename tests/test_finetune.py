"""ReLU model -> QCFS (relu_to_qcfs) -> short fine-tune -> bitplane SNN that verifies exactly."""
import sys

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy import api as nd
from neurodeploy.nn import QCFS
from neurodeploy.train.finetune import accuracy, finetune_qcfs

from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "models"))
import finetune_digits_qcfs as fd  # noqa: E402
import train_digits as td  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return td.load_data(0)


def _relu_model(digits, epochs=4):
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    model = fd.build_relu_model()
    # plain training = fine-tuning code path without the swap; the ReLU model has no QCFS,
    # so train it with the reference loop of train_digits.py
    td.train(model, xtr, ytr, epochs, seed=0)
    return model.eval()


def test_swap_finetune_compile_verify_exact(digits):
    xtr, ytr, xte, yte = digits
    model = _relu_model(digits)
    relu_acc = accuracy(model, (xte, yte))
    assert relu_acc > 0.85
    history = []
    finetune_qcfs(model, (xtr, ytr), epochs=3, lr=1e-3, levels=4, calib_data=torch.from_numpy(xtr[:256]),
                  val_data=(xte, yte), on_epoch=history.append)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    qcfs = [m for m in model.modules() if isinstance(m, QCFS)]
    assert len(qcfs) == 2 and all(m.levels == 4 and float(m.lam.detach()) > 0 for m in qcfs)
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["val_accuracy"] > 0.85
    assert not model.training
    acc = accuracy(model, (xte, yte))
    assert acc == history[-1]["val_accuracy"]

    net = nd.compile(model, torch.from_numpy(xte[:1]), scheme="bitplane", calibration=xtr[:256])
    r = nd.verify(net, model, xte, yte)
    assert r["guarantee_holds"]
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"])
    assert r["accuracy"]["float"] == pytest.approx(acc)
    assert r["accuracy"]["snn"] == r["accuracy"]["quantised_ann"] > 0.85


def test_finetune_recovers_accuracy_lost_by_the_swap(digits):
    """With few levels the swap costs accuracy; a few epochs of fine-tuning win it back."""
    xtr, ytr, xte, yte = digits
    model = _relu_model(digits, epochs=6)
    from neurodeploy.nn import relu_to_qcfs
    relu_to_qcfs(model, 2, torch.from_numpy(xtr[:512]))
    swapped = accuracy(model, (xte, yte))
    finetune_qcfs(model, (xtr, ytr), epochs=3, lr=2e-3)
    assert accuracy(model, (xte, yte)) > swapped


def test_finetune_accepts_a_data_loader_and_is_deterministic(digits):
    xtr, ytr, _, _ = digits
    ds = torch.utils.data.TensorDataset(torch.from_numpy(xtr[:256]), torch.from_numpy(ytr[:256]))

    def run():
        torch.manual_seed(1)
        m = fd.build_relu_model()
        loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=False)
        finetune_qcfs(m, loader, epochs=1, levels=3, optimizer="sgd", lr=1e-2)
        return m
    a, b = run(), run()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_finetune_errors():
    with pytest.raises(ValueError, match="no QCFS activation"):
        finetune_qcfs(nn.Sequential(nn.Linear(4, 2), nn.ReLU()), (np.zeros((4, 4), np.float32),
                                                                   np.zeros(4, np.int64)), epochs=1)
    with pytest.raises(ValueError, match="optimizer"):
        finetune_qcfs(nn.Sequential(nn.Linear(4, 2), QCFS(3)), (np.zeros((4, 4), np.float32),
                                                                 np.zeros(4, np.int64)), epochs=1, optimizer="lbfgs")
