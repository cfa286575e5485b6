"""How daeflow runs here: Keras, precision, devices, signals, tile sizes, disks, threads."""
