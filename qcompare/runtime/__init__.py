"""Runtimes: what runs a built model for the worker (transformers on torch, or llama.cpp)."""
