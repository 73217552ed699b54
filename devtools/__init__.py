"""Developer tooling, not part of the service and not shipped in the wheel: the Redis launcher
behind `make run`, `make test`, `make soak` and `make bench` (with_redis.py), the private
redis-server that tests and benchmarks start (redis_server.py), what `make run` prints
(banner.py), Flower's per-checkout credentials (flower_auth.py), and the writer of
docs/configuration.md (configuration_doc.py, `make docs`). ("Scripts" in this project means the
Lua scripts in worker/.)"""
