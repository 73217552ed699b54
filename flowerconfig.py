"""Flower's settings for the Procfile's flower line (`--conf=flowerconfig.py`).

FLOWER_PORT and FLOWER_BASIC_AUTH (and FLOWER_ADDRESS) have their defaults here and nowhere
else. The credentials reach Flower through the environment and this file, never its argv, where
`ps` would show them. Flower reads FLOWER_* variables itself, but applies this file after them,
so each setting here reads its variable first: an empty or unset one takes the default.
"""

import os

address = os.environ.get("FLOWER_ADDRESS") or "127.0.0.1"
port = int(os.environ.get("FLOWER_PORT") or "5555")
basic_auth = (os.environ.get("FLOWER_BASIC_AUTH") or "admin:admin").split(",")  # user:password
