"""tprm.engine."""
