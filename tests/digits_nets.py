"""The digits models of models/ compiled under each of the six schemes (shared by the tests of the
kernels' probes and of the Loihi 2 deployability statement)."""
import sys

import numpy as np
import torch

from conftest import MODELS, ROOT
from neurodeploy.compiler import compile_model

sys.path.insert(0, str(ROOT / "models"))
X = np.load(MODELS / "digits_test_x.npy")[:64]


def ann(scheme):
    options = {"calibration": np.load(MODELS / "digits_calib_x.npy")} if scheme == "sdnn" else {}
    if scheme == "rate":
        options = {"timesteps": 16}
    return compile_model(MODELS / "digits_qcfs.onnx", "loihi2", scheme, options)


def cuba():
    from neurodeploy.schemes.cuba import compile_lif
    from neurodeploy.train.data import digits
    from train_digits_lif import build_model
    torch.manual_seed(0)
    m = build_model()
    m.load_state_dict(torch.load(MODELS / "digits_lif.pt"))
    xtr = digits(0)[0]
    return compile_lif(m.eval(), xtr[:8], timesteps=4, calibration=xtr, input_bits=4)


def reverb():
    import neurodeploy as nd
    from train_digits_reverb import build_model
    m = build_model()
    m.load_state_dict(torch.load(MODELS / "digits_reverb.pt"))
    return nd.compile(m.eval(), torch.from_numpy(X[:2]), scheme="reverb", timesteps=4, calibration=X).graph


NETS = {"bitplane": lambda: ann("bitplane"), "rate": lambda: ann("rate"), "sws": lambda: ann("sws"),
        "sdnn": lambda: ann("sdnn"), "cuba": cuba, "reverb": reverb}
# schemes whose readout accumulates over the run (accuracy after each step)
ANYTIME = {"rate", "sdnn", "cuba", "reverb"}
