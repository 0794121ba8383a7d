"""Theory of the threshold training dimension: Gaussian widths, Gordon's escape theorem, quadratic
wells (:mod:`~dofbench.analysis.theory`) and the Hessian spectrum of trained networks
(:mod:`~dofbench.analysis.hessian`)."""
