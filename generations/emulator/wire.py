"""Requests and responses as the route handlers see them, and reading a JSON body field by
field with Google's error for each kind of mistake."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .contract import ApiError, invalid, missing

JSON_TYPE = "application/json; charset=UTF-8"
XML_TYPE = "application/xml; charset=UTF-8"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    # Lower-case names.
    headers: dict[str, str]
    body: bytes
    # Where the client reached the emulator, for the URLs an answer hands out.
    base_url: str

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(
                400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ApiError(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object."
            )
        return data


@dataclass
class Response:
    status: int
    body: Iterable[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None):
        payload = json.dumps(data, indent=2).encode()
        return cls(
            status,
            [payload],
            [("Content-Type", JSON_TYPE), ("Content-Length", str(len(payload)))] + (headers or []),
        )

    @classmethod
    def xml_error(cls, status: int, code: str, message: str, details: str = ""):
        """Cloud Storage's error body, which the media host answers with."""
        text = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Details>{details}</Details></Error>"
        )
        payload = text.encode()
        return cls(
            status, [payload], [("Content-Type", XML_TYPE), ("Content-Length", str(len(payload)))]
        )


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


# --- Reading a body: ``path`` is the field's full name, as Google's error names it ----------


def need_object(container: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        raise missing(path)
    if not isinstance(value, dict):
        raise invalid(path, value, "object")
    return value


def need_string(container: dict[str, Any], key: str, path: str) -> str:
    value = container.get(key)
    if value is None or value == "":
        raise missing(path)
    if not isinstance(value, str):
        raise invalid(path, value, "TYPE_STRING")
    return value


def need_enum(container: dict[str, Any], key: str, path: str, allowed: Iterable[str]) -> str:
    value = need_string(container, key, path)
    if value not in allowed:
        raise invalid(path, value, "one of " + ", ".join(allowed))
    return value


def need_list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise missing(key) if not value else invalid(key, value, "list")
    return value
