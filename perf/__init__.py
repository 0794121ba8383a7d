"""Performance benchmarks: each ``bench_*.py`` module has a ``main()`` that prints ratios measured
side by side in one process. ``python -m perf [NAME ...]`` runs them (all by default)."""
