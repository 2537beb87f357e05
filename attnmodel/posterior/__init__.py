"""Per-user posteriors of attentiveness given the global parameters."""
