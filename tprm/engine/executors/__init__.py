"""tprm.engine.executors."""
