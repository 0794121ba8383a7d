"""Built-in plugin module `images` (components are added by its issue)."""
