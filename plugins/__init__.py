"""dofbench's built-in components. Each module is a plugin registered through the ``dofbench``
entry-point group, exactly as a third-party package would be."""
