"""The caller's side, used by the web and the CLI: trigger, cancel, read and watch runs,
readiness, the task message."""
