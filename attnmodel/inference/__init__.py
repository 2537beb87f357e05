"""Inference: MAP-EM, NUTS, and the compiled kernels they share."""
