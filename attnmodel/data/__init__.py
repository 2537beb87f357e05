"""Votes in: reading, validating and orienting vote logs, and collapsing them to counts."""
