"""The statistical model: P_eta families, priors, the compiled likelihood, the PyMC model."""
