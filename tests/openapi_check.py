"""Check a real response against the generated OpenAPI schema (strict: every key documented, types and nulls)."""

from __future__ import annotations

import re

import jsonschema


def generated_schema() -> dict:
    """The OpenAPI document drf-spectacular generates for this code (as `manage.py spectacular` writes it)."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def to_json_schema(node, *, strict: bool = True):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a null alternative; with `strict`, an object that lists
    its properties admits no other key (a key the schema does not name is a drift, not a detail)."""
    if isinstance(node, list):
        return [to_json_schema(n, strict=strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, strict=strict) for k, v in node.items() if k not in ("nullable", "readOnly", "writeOnly")}
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def untyped(node, where: str = "") -> list[str]:
    """Places in a schema where a value is left untyped: an object with neither properties nor a typed
    additionalProperties, or a schema with no type, $ref or combinator at all."""
    found = []
    if isinstance(node, dict):
        combinators = {"$ref", "allOf", "oneOf", "anyOf", "enum"}
        if not (combinators & node.keys()) and "type" not in node:
            found.append(where or "/")
        if node.get("type") == "object" and "properties" not in node:
            extra = node.get("additionalProperties")
            if not isinstance(extra, dict) or not extra:
                found.append(where or "/")
        for key, value in node.get("properties", {}).items():
            found += untyped(value, f"{where}/{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += untyped(node[key], f"{where}/{key}")
        for key in ("allOf", "oneOf", "anyOf"):
            for i, value in enumerate(node.get(key, [])):
                found += untyped(value, f"{where}/{key}[{i}]")
    return found


def path_template(spec: dict, path: str) -> str:
    """The schema's path template that `path` (no query string) matches, e.g. /api/x/{id} for /api/x/12."""
    for template in sorted(spec["paths"], key=lambda t: t.count("{")):  # a literal path before a template
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            return template
    raise AssertionError(f"{path} is not in the schema")


def response_errors(spec: dict, path: str, status: int, body, *, method: str = "get") -> list[str]:
    """Every way `body` (a real response to `method path`) departs from the schema's response for `status`."""
    operation = spec["paths"][path_template(spec, path.split("?")[0])][method]
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{method.upper()} {path}: status {status} is not documented"]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return [f"{method.upper()} {path}: {status} has no JSON schema"]
    root = {**to_json_schema(schema), "components": to_json_schema(spec["components"])}
    validator = jsonschema.Draft202012Validator(root)
    return [
        f"{method.upper()} {path} at /{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    ]
