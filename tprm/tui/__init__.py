"""tprm.tui."""
