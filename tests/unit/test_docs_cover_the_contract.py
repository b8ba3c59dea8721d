"""The README is the contract: every reason code and every setting it could meet is in it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stockworker.config import Settings, env_name
from stockworker.contract.codes import DeadLetterCode, RejectionCode
from stockworker.contract.commands import COMMAND_TYPE_NAMES
from stockworker.contract.events import EVENT_TYPES
from stockworker.service.topics import Topics

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_rejection_and_dead_letter_code_is_documented() -> None:
    codes = [c.value for c in (*RejectionCode, *DeadLetterCode)]
    assert [c for c in codes if f"`{c}`" not in README] == []


def test_every_command_event_and_topic_is_documented() -> None:
    names = [*sorted(COMMAND_TYPE_NAMES), *(e.__name__ for e in EVENT_TYPES), *Topics().all()]
    assert [n for n in names if f"`{n}`" not in README] == []


def test_every_setting_is_documented() -> None:
    # A group of settings may be written once: `STOCKWORKER_KAFKA_SASL_MECHANISM` /
    # `_USERNAME` / `_PASSWORD`.
    missing = []
    for f in dataclasses.fields(Settings):
        if not f.metadata.get("from_env", True):
            continue
        name = env_name(f.name)
        if f"`{name}`" not in README and f"`_{name.rsplit('_', 1)[-1]}`" not in README:
            missing.append(name)
    assert missing == []
