"""Errors the REST layer turns into GitHub's error bodies."""

from __future__ import annotations

from typing import Any

DOCS = "https://docs.github.com/rest"


class ApiError(Exception):
    """An HTTP error with GitHub's body: `{"message", "documentation_url"}` plus `errors` on 422."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[dict[str, Any] | str] | None = None,
        documentation_url: str = DOCS,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.documentation_url = documentation_url
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "documentation_url": self.documentation_url}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def validation_failed(*errors: dict[str, Any] | str, message: str = "Validation Failed") -> ApiError:
    return ApiError(422, message, errors=list(errors) if errors else None)


def forbidden_integration() -> ApiError:
    return ApiError(403, "Resource not accessible by integration")


def bad_credentials() -> ApiError:
    return ApiError(401, "Bad credentials")
