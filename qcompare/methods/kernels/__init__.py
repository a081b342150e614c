"""Helpers shared by several methods: Linear surgery, simulated storage, Hessians,
scaling folds, sequential layer passes, calibrators and llama.cpp's type tables."""
