"""The agent configuration JSON in docs/mcp.md validates against the official SDK's models.

The JSON is read out of the page itself, so the page cannot drift from what the API accepts, and
every key must be one the SDK models declare: their `extra="allow"` would let a typo through.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from callsid_resolver.mcp_server import ARGUMENTS, TOOL_NAME, tool_config_override

types = pytest.importorskip("elevenlabs.types")

PAGE = Path(__file__).parents[2] / "docs" / "mcp.md"
FENCE = re.compile(r"```json\n(.*?)```", re.DOTALL)


def documents() -> list[Any]:
    return [json.loads(block) for block in FENCE.findall(PAGE.read_text())]


def the(key: str) -> Any:
    (found,) = [doc for doc in documents() if key in doc]
    return found


def undeclared_keys(model: Any, path: str = "") -> list[str]:
    """Every key a model kept only because its config allows extras, recursively."""
    if isinstance(model, BaseModel):
        out = [f"{path}.{k}" for k in (model.model_extra or {})]
        for name in type(model).model_fields:
            out += undeclared_keys(getattr(model, name), f"{path}.{name}")
        return out
    if isinstance(model, dict):
        return [k for key, v in model.items() for k in undeclared_keys(v, f"{path}.{key}")]
    if isinstance(model, list):
        return [k for i, v in enumerate(model) for k in undeclared_keys(v, f"{path}[{i}]")]
    return []


def test_the_page_shows_both_configurations() -> None:
    assert the("tool_config_overrides")
    assert the("tool_config")


def test_the_mcp_server_config_is_valid() -> None:
    config = types.McpServerConfigInput.model_validate(the("tool_config_overrides"))
    assert undeclared_keys(config) == []
    (override,) = config.tool_config_overrides
    assert override.tool_name == TOOL_NAME
    filled = {
        argument: (type(value).__name__, value.dynamic_variable)
        for argument, value in override.input_overrides.items()
    }
    variant = "McpToolConfigOverrideInputInputOverridesValue_DynamicVariable"
    assert filled == {argument: (variant, var) for argument, var in ARGUMENTS.items()}
    assert isinstance(config.request_headers["Authorization"], types.ConvAiSecretLocator)
    assert config.transport == "STREAMABLE_HTTP"


def test_the_page_and_the_helper_agree() -> None:
    (override,) = the("tool_config_overrides")["tool_config_overrides"]
    assert override == tool_config_override()
    # The output shape (what GET returns) takes the same entry.
    parsed = types.McpToolConfigOverrideOutput.model_validate(tool_config_override())
    assert undeclared_keys(parsed) == []


def test_the_webhook_tool_is_valid() -> None:
    request = types.ToolRequestModel.model_validate(the("tool_config"))
    assert undeclared_keys(request) == []
    tool = request.tool_config
    assert tool.type == "webhook"
    properties = tool.api_schema.request_body_schema.properties
    sources = {name: prop.dynamic_variable for name, prop in properties.items()}
    assert sources == ARGUMENTS
    assert all(isinstance(p, types.LiteralJsonSchemaProperty) for p in properties.values())
    header = tool.api_schema.request_headers["X-Conversation-Id"]
    assert isinstance(header, types.ConvAiDynamicVariable)
    assert header.variable_name == "system__conversation_id"


def test_a_typo_is_caught() -> None:
    """The check has teeth: a misspelt key or source fails it."""
    config = the("tool_config_overrides")
    config["tool_config_overrides"][0]["input_override"] = config["tool_config_overrides"][0].pop(
        "input_overrides"
    )
    assert undeclared_keys(types.McpServerConfigInput.model_validate(config)) != []
    config = the("tool_config_overrides")
    config["tool_config_overrides"][0]["input_overrides"]["call_sid"]["source"] = "dynamic"
    with pytest.raises(ValueError, match="source"):
        types.McpServerConfigInput.model_validate(config)
