"""tprm.tui.widgets."""
