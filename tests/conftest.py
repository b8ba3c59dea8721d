from __future__ import annotations

from hypothesis import settings

# Shared CI machines are slow at times: no per-example deadline, a bounded example count.
settings.register_profile("default", deadline=None, max_examples=200)
settings.load_profile("default")

pytest_plugins = ["tests.support.services"]
