"""Speed benchmarks: each ``bench_*.py`` module has a ``main()`` that prints ratios measured side
by side in one process. ``python -m perf`` runs the anchor (dofbench's trial ÷ the plain
PyTorch loop of :mod:`perf.plain_loop`); ``python -m perf NAME ...`` runs the named
ones (``anchor``, ``subspace``, ``executors``, ``nested``, ``adaptive``), ``all`` every one.

Not part of the installed package (``pyproject.toml`` lists dofbench's packages one by one); it is
run from a checkout. The suites file ``benchmarks.toml`` next to this folder is unrelated to it."""
