"""Training: the tf.data pipeline, the trainer and its callbacks; knows nothing of MLflow."""
