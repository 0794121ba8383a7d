"""The training machinery: a network as a function of one flat θ, the optimizers of φ, random
projections, the artifact cache, datasets in memory and their preprocessing, the one training loop
(K seeds stacked; a single trial is K = 1), and the worker that runs trials. Knows nothing of
plugins, the store or the CLI."""
