"""tprm.science."""
