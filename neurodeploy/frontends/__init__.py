"""Front ends: turn a framework's model file into a `FloatGraph`.

onnx_frontend.py and torch/ read the formats every scheme compiles (.onnx, .pt2, nn.Module);
per_step.py finds the PyTorch front end of a trained SNN among the schemes' (`Scheme.front_end`);
nir/ reads NIR graphs, a format only the cuba scheme compiles (`Scheme.model_front_ends`).
"""
