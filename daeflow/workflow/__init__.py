"""Workflows: the commands' work, where plugin, data, train, track and infer meet."""
