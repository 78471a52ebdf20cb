"""Errors rendered as RFC 9457 problem documents (`application/problem+json`), and the one
list of the problem types the server answers (`PROBLEM_TYPES`; docs/problems.md is made from it
with `python -m regshield.api.problems > docs/problems.md`).

Every `type` is `urn:regshield:problem:<slug>`: a stable name, not a page to fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from regshield.errors import FieldError, RegshieldError, ValidationFailed

PROBLEM_TYPE = "urn:regshield:problem:"
log = structlog.get_logger("regshield.api")
BUSY_RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class ProblemType:
    """One kind of problem: its `type` URI ends with `slug`; `when` it is answered and what
    the client should do about it (docs/problems.md is generated from these)."""

    slug: str
    status: int
    title: str
    when: str
    action: str
    cli_only: bool = False  # raised by commands, never answered by the API

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE + self.slug


# Every problem type the server can answer, in one place. Each RegshieldError subclass's
# `type_slug` is here with its status and title (tests/api/test_problems_and_openapi.py walks
# the hierarchy); the API's own types (malformed body, body limit, routing) too.
PROBLEM_TYPES: tuple[ProblemType, ...] = (
    ProblemType("malformed-body", 400, "The request body could not be read",
                "The body is not decodable as JSON text (not UTF-8, for example).",
                "Send a UTF-8 JSON document; do not retry the same bytes."),
    ProblemType("validation-failed", 422, "The request has invalid fields",
                "A parameter or body field is missing, of the wrong type, out of range or "
                "refused by a rule; JSON that does not parse is one too (field `body`). "
                "`errors` lists every failing field at once: `field` (a dotted path), "
                "`code`, `message`.",
                "Correct every field named in `errors`, then send again."),
    ProblemType("registry-refused", 422, "The registry refused the change",
                "The registry answered the command with an error; nothing changed here. "
                "`errors` names the field the refusal concerns.",
                "Read `errors` and `detail`; change the request before sending it again."),
    ProblemType("authentication-required", 401, "Authentication required",
                "No credential was sent (`WWW-Authenticate: Bearer`).",
                "Send an API token as `Authorization: Bearer rs_...`."),
    ProblemType("authentication-failed", 401, "Authentication failed",
                "The credential is unknown, expired, revoked or of a disabled user; or the "
                "email, password or one-time code is wrong.",
                "Do not retry with the same credential: sign in again or use another token."),
    ProblemType("second-factor-required", 401, "A one-time code is required",
                "The password was right, but the user has a second factor: send `otp` too.",
                "Ask the user for a one-time code and sign in again with it."),
    ProblemType("permission-denied", 403, "Permission denied",
                "The credential's role or scopes do not allow this action (recorded as an "
                "`authz:permission:denied` event).",
                "Do not retry; use a credential allowed to do it."),
    ProblemType("step-up-required", 403, "A fresh one-time code is required",
                "A sensitive change needs a second factor proved in the last few minutes, "
                "and this request carried none (or the credential may not step up).",
                "Send the request again with a current one-time code as `X-OTP`, from a "
                "credential that may step up (a login token, a console session, or a token "
                "with the `self:step_up:use` scope)."),
    ProblemType("not-found", 404, "Not found",
                "No such object, or one that belongs to another account (the two answers "
                "are the same so that existence never leaks); also an unknown path.",
                "Check the name or identifier; do not retry."),
    ProblemType("method-not-allowed", 405, "Method Not Allowed",
                "The path exists but not with this method (`Allow` lists the methods).",
                "Use one of the methods in `Allow`."),
    ProblemType("conflict", 409, "Conflict with the current state",
                "The object is not in a state that allows the change (taken, locked, a "
                "registry operation still pending, ...).",
                "Read the object again; retry only once its state allows the change."),
    ProblemType("operation-busy", 409, "The operation is running",
                "Another worker is sending this registry operation right now.",
                "Retry after a few seconds; read the object to see the outcome."),
    ProblemType("registry-lock-refused", 409, "Refused by the registry-lock rules",
                "The registry-lock request is not in a state that allows this step (expired, "
                "already used, waiting for another party).",
                "Read the request; start a new one if it has ended."),
    ProblemType("disclosure-refused", 409, "Refused by the disclosure-request rules",
                "The disclosure request is not in a state that allows this step.",
                "Read the request again; do not retry the same step."),
    ProblemType("body-too-large", 413, "Request body too large",
                "The body is larger than the route allows (1 MiB; the zone import its own "
                "limit); refused before it is read, and the connection is closed. "
                "`max_bytes` gives the limit.",
                "Send a smaller body; do not retry the same one."),
    ProblemType("throttled", 429, "Too many attempts",
                "Too many requests from this source or with this token (the API's rate "
                "limit, `[limits] api_per_minute`, shared by every instance), or too many "
                "attempts for this user (sign-in, one-time codes, disclosure filings). "
                "`Retry-After` and `retry_after` give the wait in seconds.",
                "Wait `Retry-After` seconds before trying again."),
    ProblemType("internal-error", 500, "Internal error",
                "An unexpected failure; nothing was changed (the transaction is rolled back).",
                "Retry later; report it with the `request_id` if it persists."),
    ProblemType("configuration-error", 500, "Configuration error",
                "The installation is not usable as configured (missing key file, bad URL).",
                "Report it to the operator with the `request_id`."),
    ProblemType("hsm-unavailable", 500, "The key store (PKCS#11) is not usable",
                "The PKCS#11 token that holds DNSSEC keys cannot be used.",
                "Report it to the operator; retry later."),
    ProblemType("dns-parent-unknown", 500, "The parent zone's servers could not be found",
                "The servers of the zone's parent could not be found in the DNS.",
                "Retry later; check the delegation of the parent zone."),
    ProblemType("registry-error", 502, "The registry link failed",
                "The registry answered in a way that cannot be used.",
                "Retry later; the operation is settled or reconciled by the outbox."),
    ProblemType("registry-protocol-error", 502, "The registry broke the EPP protocol",
                "The registry's answer broke the EPP protocol.",
                "Retry later; report it to the operator if it persists."),
    ProblemType("registry-login-refused", 502, "The registry refused the login",
                "The registry refused the registrar's EPP login (credentials, certificate).",
                "Report it to the operator; retry later."),
    ProblemType("registry-poll-failed", 502, "The registry's message queue could not be read",
                "Reading the registry's poll queue failed.",
                "Run the poll again later.", cli_only=True),
    ProblemType("epp-codec-error", 502, "Malformed EPP document",
                "An EPP document could not be built or read.",
                "Report it to the operator with the `request_id`."),
    ProblemType("epp-unknown-command", 502, "Unknown EPP command",
                "The EPP command is not known (sandbox registry).",
                "Report it to the operator."),
    ProblemType("epp-unimplemented-command", 502, "Unimplemented EPP command",
                "The EPP command is not implemented (sandbox registry).",
                "Report it to the operator."),
    ProblemType("epp-unimplemented-option", 502, "Unimplemented EPP option",
                "The EPP option is not implemented (sandbox registry).",
                "Report it to the operator."),
    ProblemType("epp-unsupported-interface", 502, "Unsupported secDNS interface",
                "The registry does not support the secDNS interface used.",
                "Report it to the operator."),
    ProblemType("epp-unimplemented-object-service", 502, "Unimplemented EPP object service",
                "The EPP object service is not implemented (sandbox registry).",
                "Report it to the operator."),
    ProblemType("registry-unavailable", 503, "The registry cannot be reached",
                "No session with the registry could be opened; the command was not sent and "
                "nothing was changed.",
                "Retry later: it is safe to send the same request again."),
    ProblemType("busy", 503, "Too busy to answer now",
                "Every connection to the database stayed taken for 5 seconds (a flood, or a "
                "slow database); the request was not carried out and nothing was changed. "
                "`Retry-After` gives the wait in seconds.",
                "Retry after `Retry-After` seconds: it is safe to send the same request again."),
    ProblemType("registry-lock-code-undelivered", 503,
                "The verification code could not be sent",
                "The registry-lock verification code could not be mailed; the request was "
                "cancelled.",
                "Retry later; check the lock address of your credential."),
    ProblemType("registry-connection-lost", 504,
                "The registry connection was lost; the outcome is unknown",
                "The connection broke after the command was sent; the outbox reconciles the "
                "outcome with the registry.",
                "Do not resend at once: read the object later to see the outcome."),
    ProblemType("sandbox-registrar-not-found", 404, "No registrar with this identifier",
                "The built-in sandbox registry has no such registrar.",
                "Check the identifier.", cli_only=True),
    ProblemType("sandbox-domain-not-found", 404, "No live domain with this name",
                "The built-in sandbox registry has no such domain.",
                "Check the name.", cli_only=True),
    ProblemType("sandbox-registrar-exists", 409, "A registrar with this identifier exists",
                "The built-in sandbox registry has this registrar already.",
                "Use another identifier.", cli_only=True),
    ProblemType("sandbox-certificate-refused", 422, "Not a PEM certificate",
                "The sandbox registry was given something other than a PEM certificate.",
                "Give a PEM certificate.", cli_only=True),
    ProblemType("sandbox-outdated", 500,
                "The sandbox registry's data was made by an older version",
                "The sandbox registry's data needs to be made again.",
                "Reset the sandbox registry.", cli_only=True),
    ProblemType("http-error", 0, "HTTP error",
                "Any other HTTP error raised by the web framework (its status is the "
                "answer's).",
                "Read `detail`."),
)
PROBLEM_TYPES_BY_SLUG: dict[str, ProblemType] = {p.slug: p for p in PROBLEM_TYPES}
# What the web framework's own errors become (FastAPI answers 400 to a body it cannot decode).
HTTP_ERROR_TYPES: dict[int, ProblemType] = {
    400: PROBLEM_TYPES_BY_SLUG["malformed-body"], 404: PROBLEM_TYPES_BY_SLUG["not-found"],
    405: PROBLEM_TYPES_BY_SLUG["method-not-allowed"]}


def markdown() -> str:
    """docs/problems.md: every problem type, its status, when it happens, what to do."""
    lines = [
        "# Problem types",
        "",
        "Every error the API answers is an RFC 9457 problem document, served as",
        "`application/problem+json`: `type` (a stable URI, `urn:regshield:problem:<slug>`),",
        "`title`, `status`, `detail` (a sentence for people), `instance` (the request's path)",
        "and `request_id` (also in the `X-Request-ID` header; quote it when reporting a",
        "problem). A validation problem adds `errors`, every failing field at once, each",
        "`{field, code, message}`; `throttled` adds `retry_after` and `body-too-large`",
        "`max_bytes`. The OpenAPI document (`/api/v1/openapi.json`) declares, for each",
        "operation, the statuses it can answer and the types each carries.",
        "",
        "Clients should branch on `type`, never on `title` or `detail`.",
        "",
        "This page is generated from `PROBLEM_TYPES` in `src/regshield/api/problems.py`",
        "(`python -m regshield.api.problems > docs/problems.md`); a test fails when they",
        "differ.",
        "",
        "| type | status | title |",
        "|---|---|---|",
    ]
    lines += [f"| [`{p.slug}`](#{p.slug}) | {p.status or 'varies'} | {p.title} |"
              for p in PROBLEM_TYPES]
    for p in PROBLEM_TYPES:
        where = " Raised by commands (`regshield ...`) only, never answered by the API." \
            if p.cli_only else ""
        lines += ["", f"## {p.slug}", "", f"`{p.uri}`, HTTP {p.status or 'status varies'}: "
                  f"{p.title}.{where}", "", f"When: {p.when}", "", f"What to do: {p.action}"]
    return "\n".join(lines) + "\n"


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
        known = HTTP_ERROR_TYPES.get(exc.status_code)
        slug = known.slug if known else "http-error"
        title = known.title if known else str(exc.detail)
        return problem(request, exc.status_code, slug, title, str(exc.detail),
                       headers=dict(exc.headers or {}))

    @app.exception_handler(PoolTimeout)
    async def busy(request: Request, exc: PoolTimeout) -> ProblemResponse:
        # Every database connection is taken (a flood, or a slow database): say so at once,
        # rather than queue the request or call it an internal error.
        log.warning("api.busy", path=request.url.path[:200])
        return problem(request, 503, "busy", "Too busy to answer now",
                       "Every database connection is in use; try again shortly.",
                       headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)})

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


if __name__ == "__main__":
    print(markdown(), end="")
