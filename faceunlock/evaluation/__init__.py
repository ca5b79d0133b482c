"""Verification metrics and evaluation protocols (no Qt, no torch)."""
