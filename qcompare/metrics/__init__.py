"""Pure measurements (quality, speed, memory, roofline); each docstring states its math."""
