"""The committed schemas/ must match the pydantic models: regenerate with
`stockworker schemas` after changing a command or event."""

from __future__ import annotations

import json
from pathlib import Path

from stockworker.entrypoints.schemas import expected_schemas, render, write_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_models() -> None:
    stale = write_schemas(SCHEMAS, check=True)
    assert stale == [], f"run `stockworker schemas`: out of date: {stale}"


def test_no_schema_file_is_left_without_a_model() -> None:
    committed = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*.json")}
    assert committed == set(expected_schemas())


def test_drift_is_detected(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    target = tmp_path / "commands" / "PickStock.json"
    schema = json.loads(target.read_text())
    schema["properties"].pop("order_ref")
    target.write_text(render(schema))
    assert write_schemas(tmp_path, check=True) == ["commands/PickStock.json"]


def test_command_schemas_require_the_command_id_and_forbid_extra_fields() -> None:
    for name, schema in expected_schemas().items():
        if name.startswith("commands/"):
            assert "command_id" in schema["required"], name
            assert schema["additionalProperties"] is False, name
