"""Front ends: turn a framework's model file into a `FloatGraph`."""
