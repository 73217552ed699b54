"""Developer tooling, not part of the service: the Redis launcher behind `make run`, `make test`,
`make soak` and `make bench` (with_redis.py) and the private redis-server the tests and
benchmarks start (redis_server.py). Not shipped in the wheel. ("Scripts" in this project means
the Lua scripts in worker/.)"""
