"""The paper's experiments, kept apart from the library."""
