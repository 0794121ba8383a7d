"""Built-in plugin module `quadratic` (components are added by its issue)."""
