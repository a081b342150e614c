"""One file per quantization method family; methods/kernels/ holds their shared helpers."""
