"""Built-in plugin module `vision` (components are added by its issue)."""
