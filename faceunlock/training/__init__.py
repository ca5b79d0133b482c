"""Training, fine-tuning, conversion and export of the encoder (the only package using torch)."""
