"""Inference: loading a model safely, tiled denoising, self-ensemble, scoring a model."""
