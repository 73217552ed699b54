"""Developer tooling, not part of the service and not shipped in the wheel: the Redis launcher
behind `make run`, `make test`, `make soak` and `make bench` (with_redis.py), the private
redis-server that tests and benchmarks start (redis_server.py), what `make run` prints
(banner.py), and Flower's per-checkout credentials (flower_auth.py). ("Scripts" in this
project means the Lua scripts in worker/.)"""
