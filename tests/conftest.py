"""Shared fixtures and the Hypothesis profiles.

Pick a profile with MANDI_HYPOTHESIS_PROFILE (``dev`` default, ``ci`` under CI).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("MANDI_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
)
