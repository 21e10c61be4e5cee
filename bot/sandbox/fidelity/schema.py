"""OpenAPI schemas turned into JSON Schema 2020-12 (see the package docstring for the rules)."""

from __future__ import annotations

from typing import Any, Final

from bot.sandbox.fidelity.common import JSONDict

_SCHEMA_VALUED: Final = frozenset(
    {
        "items",
        "not",
        "additionalProperties",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
    }
)
_SCHEMA_LISTS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"})
_OPENAPI_ONLY: Final = frozenset({"nullable", "discriminator", "example", "xml", "externalDocs"})


def convert_schema(schema: Any) -> Any:
    """An OpenAPI (3.0 or 3.1) Schema Object as JSON Schema 2020-12. The input is not modified."""
    if not isinstance(schema, dict):
        return schema  # boolean schemas
    out: JSONDict = {}
    for key, value in schema.items():
        if key in _OPENAPI_ONLY or key.startswith("x-"):
            continue
        if key in _SCHEMA_VALUED:
            out[key] = [convert_schema(v) for v in value] if isinstance(value, list) else convert_schema(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [convert_schema(v) for v in value]
        elif key in _SCHEMA_MAPS:
            out[key] = {name: convert_schema(v) for name, v in value.items()}
        else:
            out[key] = value
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:  # OpenAPI 3.0 style
            out[bound] = out.pop(limit)
    if schema.get("nullable") is True:
        out = _make_nullable(out)
    return out


def _make_nullable(schema: JSONDict) -> JSONDict:
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    typ = schema.get("type")
    if isinstance(typ, str):
        schema["type"] = [typ, "null"]
        return schema
    if isinstance(typ, list):
        if "null" not in typ:
            schema["type"] = [*typ, "null"]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def convert_document(doc: JSONDict) -> JSONDict:
    """Convert every Schema Object of an OpenAPI document: components.schemas and each ``schema`` member."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        return {
            k: (convert_schema(v) if k == "schema" else v if k in ("example", "examples") else walk(v))
            for k, v in node.items()
        }

    out: JSONDict = {k: walk(v) for k, v in doc.items() if k not in ("components", "x-kickoff-routes")}
    components: JSONDict = {}
    for kind, objects in doc.get("components", {}).items():
        if kind == "schemas":
            components[kind] = {name: convert_schema(s) for name, s in objects.items()}
        elif kind != "examples":
            components[kind] = walk(objects)
    out["components"] = components
    return out


def json_pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """The node at JSON pointer ``pointer`` (``/a/b``, no ``#``) of ``doc``; ``KeyError`` if absent."""
    node = doc
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node
