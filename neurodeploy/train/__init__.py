"""Training helpers: fit SNNs with BPTT or rate-based backpropagation (memory independent of T).

`fit(model, (x, y), epochs, timesteps, method="bptt"|"rate_M"|"rate_S")`, `predict`, checkpoints.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .data import digits
from .fit import evaluate, fit, predict
from .rate_bp import SavedTensorMeter, bptt_step, rate_step, train_step

__all__ = ["fit", "predict", "evaluate", "save_checkpoint", "load_checkpoint", "digits",
           "bptt_step", "rate_step", "train_step", "SavedTensorMeter"]


def __getattr__(name):
    # finetune imports the QCFS module stack; load it on first use
    if name in ("finetune_qcfs", "accuracy"):
        from . import finetune
        return getattr(finetune, name)
    raise AttributeError(f"module 'neurodeploy.train' has no attribute {name!r}")
