"""The committed JSON Schema matches the model, and describes the files users write."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from bot.config import config_schema, schema_json
from tests.config.examples import DESIGN_EXAMPLE

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "kickoff-config.schema.json"
REGENERATE = (
    "docs/kickoff-config.schema.json is out of date with bot/config/model.py. Regenerate it with:\n"
    "  .venv/bin/python -c \"from bot.config import schema_json; print(schema_json(), end='')\" "
    "> docs/kickoff-config.schema.json\n"
    "(or `kickoff config schema > docs/kickoff-config.schema.json`) and commit the result."
)


def test_the_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.exists(), REGENERATE
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == config_schema(), REGENERATE
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_json(), REGENERATE


def test_the_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(config_schema())


def test_the_schema_accepts_the_design_example_and_extends() -> None:
    validator = jsonschema.Draft202012Validator(config_schema())
    document = yaml.safe_load(DESIGN_EXAMPLE)
    assert list(validator.iter_errors(document)) == []
    assert list(validator.iter_errors({"_extends": "acme/.github", "runner": "fly"})) == []


def test_the_schema_rejects_what_the_model_rejects() -> None:
    validator = jsonschema.Draft202012Validator(config_schema())
    for document in (
        {"limits": {"max_open_prs": 0}},
        {"limitz": {}},
        {"tasks": {"Fix": {}}},
        {"tasks": {"cancel": {}}},
        {"queue": {"merge": "sometimes"}},
        {"agents": {"x": {"command": "python fix.py"}}},
    ):
        assert list(validator.iter_errors(document)), document


def test_the_schema_shows_top_level_defaults() -> None:
    properties = config_schema()["properties"]
    assert properties["limits"]["default"]["max_open_prs"] == 5
    assert set(properties["agents"]["default"]) == {"claude", "codex", "aider", "gemini"}
    assert properties["tasks"]["default"]["research"]["output"] == "report"


def test_the_configuration_guide_mentions_every_key() -> None:
    guide = (SCHEMA_FILE.parent / "configuration.md").read_text(encoding="utf-8")
    schema = config_schema()
    for section, spec in schema["properties"].items():
        assert f"`{section}`" in guide, section
        nested = [spec, *spec.get("patternProperties", {}).values()]
        reference = next((item["$ref"] for item in nested if "$ref" in item), "")
        if reference:
            for key in schema["$defs"][reference.rsplit("/", 1)[-1]]["properties"]:
                assert f"`{key}`" in guide, f"{section}.{key}"
