"""Deciding what to deploy: the recommendation, the memory calculator, model shapes,
common models and GPUs, and time estimates."""
