"""Quantization methods, one module per family; `base` holds the contract."""
