"""Errors rendered as RFC 9457 problem documents (`application/problem+json`)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from regshield.errors import FieldError, RegshieldError, ValidationFailed

PROBLEM_TYPE = "urn:regshield:problem:"
log = structlog.get_logger("regshield.api")


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem(request: Request, status: int, slug: str, title: str, detail: str,
            extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> ProblemResponse:
    body = {
        "type": PROBLEM_TYPE + slug, "title": title, "status": status, "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **(extra or {}),
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def field_path(location: tuple[Any, ...]) -> str:
    """`("body", "street", 0)` -> `street.0`."""
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RegshieldError)
    async def regshield_error(request: Request, exc: RegshieldError) -> ProblemResponse:
        return problem(request, exc.http_status, exc.type_slug, exc.title, exc.detail,
                       exc.extra(), exc.headers())

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = [
            FieldError(field_path(tuple(e.get("loc", ()))), str(e.get("type", "invalid")),
                       str(e.get("msg", "is invalid")))
            for e in exc.errors()
        ]
        failed = ValidationFailed(errors or [FieldError("body", "invalid", "is invalid")])
        return problem(request, 422, failed.type_slug, failed.title, failed.detail,
                       failed.extra())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(request, exc.status_code, slug, str(exc.detail), str(exc.detail),
                       headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> ProblemResponse:
        request_id = getattr(request.state, "request_id", None)
        log.error("api.unexpected_error", error_type=type(exc).__name__,
                  request_id=request_id, path=request.url.path)
        # This response bypasses the middleware that sets these on every other response.
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                   **({"X-Request-ID": request_id} if request_id else {})}
        return problem(request, 500, "internal-error", "Internal error",
                       "The request failed; quote the request id when reporting it.",
                       headers=headers)
