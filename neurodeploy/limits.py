"""The sizes neurodeploy accepts, in one place (the README's "Safety" section lists them).

Each cap is far above what a network deployed on neuromorphic hardware needs, and far below what
would make a command allocate tens of gigabytes or run for days because a file (or a typo) says
so.  Going over one is a one-line error naming the cap, checked before anything of that size is
allocated or run.

- MAX_TIMESTEPS: time steps (--timesteps: rate's T, bitplane's steps, cuba's and reverb's T; sws's
  --coding-steps and --silent-steps), checked as those options' range, and the T of every layer of
  a compiled network when it is loaded.  Rate-coded conversions in the literature use up to a few
  thousand steps; the simulator's work grows with it per sample.
- MAX_RUN_STEPS: steps of a whole run, T plus the pipeline's fill (start steps, window starts,
  a rate layer's bias steps) in a compiled network.
- MAX_LAYER_NEURONS: neurons in one layer (and values in one input sample): 2^24 = 16 Loihi 2 chips'
  worth (1,048,576 neurons each); an ImageNet ResNet's largest layer has 0.8 M.  The simulator
  holds batch x neurons membrane values per layer.
- MAX_IR_NESTING: nesting depth of a compiled network's ir.json (one needs about 12).
- MAX_BATCH_SIZE: --batch-size.
- MAX_CHIPS: --chips, far beyond the largest Loihi system (1152 chips).
"""
from __future__ import annotations

import math

from .errors import NeurodeployError

MAX_TIMESTEPS = 1 << 14            # 16384
MAX_RUN_STEPS = 1 << 16            # 65536
MAX_LAYER_NEURONS = 1 << 24        # 16,777,216
MAX_IR_NESTING = 64
MAX_BATCH_SIZE = 1 << 20
MAX_CHIPS = 1 << 16


def check_layer_size(shape: tuple, where: str, what: str = "layer") -> None:
    """Refuse a layer (or input sample) of more than MAX_LAYER_NEURONS values; needs only the shape."""
    n = math.prod(int(d) for d in shape)
    if n > MAX_LAYER_NEURONS:
        raise NeurodeployError(f"{what} of shape {tuple(shape)} has {n} values, over neurodeploy's cap of "
                               f"{MAX_LAYER_NEURONS} per layer", where,
                               "make the layer smaller or split the network (neurodeploy/limits.py)")
