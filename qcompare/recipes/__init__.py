"""Sensitivity sweeps and mixed-precision recipes: the sweep's spec and table, the
knapsack, budgets and their charts."""
