"""tprm: a terminal-first experiment manager for the three-regime model of network pruning."""

__version__ = "0.1.0"

# Bumped whenever a change in the science code changes what a job computes; part of every job key.
SCIENCE_VERSION = 1
