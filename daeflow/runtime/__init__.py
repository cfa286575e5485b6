"""How daeflow runs on this machine: Keras import, precision, devices, signals, tile sizes, full disks, worker threads."""
