"""The statistical model: families of P_eta, priors, the PyMC model and simulation."""
