"""Inference: MAP-EM, NUTS, and the registry of methods that turn a fit into a result tree."""
