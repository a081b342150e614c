"""The demo pages' logic: generation side by side, its worker, decoding, the playground
and the drift explorer."""
