"""What every process imports: the vocabulary, keys, settings, errors, the run store
and its Lua scripts, the lifecycle hooks."""
