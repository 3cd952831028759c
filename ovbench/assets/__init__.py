"""Shipped weights and model configs of the embedded benchmark (SHA-256 checked at load)."""
