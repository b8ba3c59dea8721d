"""How the long-running processes (worker, relay) run: on uvloop, with a frozen heap.

uvloop's event loop costs the worker less CPU per command than asyncio's own (see
docs/operations.md, "Performance"). `settle_heap` moves everything built at start-up
(modules, models, pools) out of the garbage collector's reach, so its full passes stop
walking objects that live as long as the process.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run_service(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
