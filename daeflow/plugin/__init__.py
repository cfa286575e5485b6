"""Plugins: the hook contract, spec classes, hyperparameters, the manager and the registry."""
