"""How long the model tests explore: `make test` runs the CI size (a couple of minutes at most
on a loaded 2-core machine, all machines together), `make prove` ten times the examples
(`MODEL_PROFILE=prove`). `MODEL_EXAMPLES` / `MODEL_STEPS` override either, for a quick local
try or a longer hunt; `MODEL_NO_SHRINK=1` reports a failure unshrunk (fast, while debugging)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

#: profile → (max_examples, stateful_step_count)
PROFILES = {"ci": (200, 30), "prove": (2000, 30)}


def machine_settings(scale: float = 1.0) -> settings:
    """Settings for one machine; `scale` sizes a slower machine (the HTTP one) against it."""
    examples, steps = PROFILES[os.environ.get("MODEL_PROFILE", "ci")]
    examples = int(os.environ.get("MODEL_EXAMPLES", examples * scale))
    steps = int(os.environ.get("MODEL_STEPS", steps))
    shrink = not os.environ.get("MODEL_NO_SHRINK")
    phases = [p for p in Phase if p is not Phase.shrink or shrink]
    return settings(phases=phases, max_examples=max(1, examples), stateful_step_count=steps,
                    deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])
