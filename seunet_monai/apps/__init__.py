"""Applications built on the SEUNet library (whole-slide inference)."""
