"""tprm.tui.screens."""
