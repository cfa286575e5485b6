"""The built-in training objectives, registered through the same hook as third-party ones."""
