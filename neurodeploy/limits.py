"""Documented caps on what neurodeploy accepts, so that a typo or an edited file is refused in one
line instead of running for hours or allocating the machine's memory.

Each cap is far above what a network for one of today's chips needs (Loihi 2 networks run for
tens to a few thousand steps per sample) and low enough that the simulator finishes a batch in
reasonable time.  The README's safety section lists them.
"""
from __future__ import annotations

MAX_TIMESTEPS = 1 << 14      # T of a layer, `--timesteps`, `--coding-steps` x layers stays far below
MAX_RUN_STEPS = 1 << 16      # steps of a whole run: T plus the pipeline's fill (start steps, window starts)
MAX_LAYER_NEURONS = 1 << 24  # neurons of one layer of a compiled network (prod of its shape)
MAX_IR_NESTING = 64          # nesting depth of ir.json (a compiled network needs about 12)
MAX_BATCH_SIZE = 1 << 20     # --batch-size
MAX_CHIPS = 1 << 16          # --chips: far beyond the largest Loihi system (1152 chips)
