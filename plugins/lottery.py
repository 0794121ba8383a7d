"""Built-in plugin module `lottery` (components are added by its issue)."""
