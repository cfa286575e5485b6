"""Built-in architectures, each an ordinary plugin module registered like a third-party one."""
