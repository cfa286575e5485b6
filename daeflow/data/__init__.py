"""Data: loading and checking arrays, data ranges, splits, noise models, scaled pairs."""
