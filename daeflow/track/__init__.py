"""Tracking: every MLflow call (store, run lifecycle, logging, model flavour, queries)."""
