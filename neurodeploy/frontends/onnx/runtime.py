"""onnxruntime, run the way every check here needs it: the model as written, on the CPU."""
from __future__ import annotations

import numpy as np


def session(model, threads: int = 2):
    """An InferenceSession of a path or ModelProto with graph optimisations disabled: the model as
    written, with no fusion into integer kernels, which onnxruntime picks per CPU (a QDQ Conv becomes
    a u8s8 QLinearConv whose AVX2 kernel saturates where VNNI does not), and no float re-association
    (e.g. BatchNorm folded into a Conv), which would make the result depend on the optimiser."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def run(sess, x: np.ndarray, names: list[str] | None = None, batch_size: int = 256) -> list[np.ndarray]:
    """Outputs `names` (default: all) on x (N, ...), in batches; a model with a fixed batch size is
    run in chunks of it, zero-padding the last one."""
    inp = sess.get_inputs()[0]
    fixed_batch = isinstance(inp.shape[0], int) and inp.shape[0] > 0
    step = inp.shape[0] if fixed_batch else batch_size
    outs = []
    for start in range(0, len(x), step):
        xb = np.asarray(x[start:start + step], dtype=np.float32)
        n = len(xb)
        if fixed_batch and n < step:
            xb = np.concatenate([xb, np.zeros((step - n,) + xb.shape[1:], np.float32)])
        outs.append([o[:n] for o in sess.run(names, {inp.name: xb})])
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
