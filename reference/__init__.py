"""The paper's network, defined once (spec, params) and implemented twice (NumPy, PyTorch)."""
