"""One error hierarchy. Each error knows its HTTP status and the EPP result code it maps to.

Adapters render these errors the same way everywhere (problem+json in the API, a message and a
non-zero exit in the CLI); flows raise them and never format responses themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One reason one field was refused. `field` is a dotted path (`street.0`)."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class RegshieldError(Exception):
    """Base of every error a flow or query may raise on purpose."""

    http_status: ClassVar[int] = 500
    epp_code: ClassVar[int] = 2400
    type_slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def extra(self) -> dict[str, Any]:
        """Members added to the problem document beyond type, title, status and detail."""
        return {}

    def headers(self) -> dict[str, str]:
        return {}


class ValidationFailed(RegshieldError):
    """The input was refused; `errors` lists every failing field at once."""

    http_status = 422
    epp_code = 2005
    type_slug = "validation-failed"
    title = "The request has invalid fields"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        if not errors:
            raise ValueError("ValidationFailed needs at least one field error")
        self.errors = list(errors)
        fields = ", ".join(sorted({e.field for e in errors}))
        super().__init__(detail or f"Invalid fields: {fields}")

    def extra(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


class AuthenticationRequired(RegshieldError):
    http_status = 401
    epp_code = 2200
    type_slug = "authentication-required"
    title = "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="regshield"'}


class AuthenticationFailed(AuthenticationRequired):
    type_slug = "authentication-failed"
    title = "Authentication failed"


class SecondFactorRequired(AuthenticationFailed):
    """The password was right but the account needs a one-time code as well."""

    type_slug = "second-factor-required"
    title = "A one-time code is required"


class PermissionDenied(RegshieldError):
    http_status = 403
    epp_code = 2201
    type_slug = "permission-denied"
    title = "Permission denied"


class StepUpRequired(PermissionDenied):
    """A sensitive change needs a second factor proved in the last few minutes (X-OTP)."""

    type_slug = "step-up-required"
    title = "A fresh one-time code is required"


class NotFound(RegshieldError):
    """Also raised for objects of another tenant, so that existence never leaks."""

    http_status = 404
    epp_code = 2303
    type_slug = "not-found"
    title = "Not found"


class Conflict(RegshieldError):
    http_status = 409
    epp_code = 2302
    type_slug = "conflict"
    title = "Conflict with the current state"


class Throttled(RegshieldError):
    http_status = 429
    epp_code = 2502
    type_slug = "throttled"
    title = "Too many attempts"

    def __init__(self, retry_after_seconds: int, detail: str | None = None) -> None:
        self.retry_after_seconds = max(1, int(retry_after_seconds))
        super().__init__(detail or f"Too many attempts; retry after {self.retry_after_seconds}s")

    def extra(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after_seconds}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ConfigurationError(RegshieldError):
    """The installation is not usable as configured (missing key file, bad URL, ...)."""

    type_slug = "configuration-error"
    title = "Configuration error"
