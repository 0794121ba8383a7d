"""Running suites: the plugin host, suite resolution, the executors, the one scheduler (grid and
adaptive strategies feed it), and theory predictions for a suite."""
