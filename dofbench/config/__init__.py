"""What a trial is: the suite file's schema, trial specs and their identity, and the runtime
settings that say how (never what) a run executes. Imports nothing else of dofbench but
:mod:`dofbench.errors`."""
