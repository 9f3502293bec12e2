"""tprm.analysis."""
