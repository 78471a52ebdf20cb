"""The contact relay form: `/contact/{domain}/{role}`, the address that RDAP and WHOIS publish
in place of a redacted email (RDP; `contact_form_url` in rdds/record.py).

GET shows a plain HTML form (no script, no external asset); POST (form-encoded: `sender_name`,
`sender_email`, `message`, `token`) passes the message on through `RelayMessageSend`
(flows/relay.py) and answers "sent" without ever naming the contact's address. The form token
is a keyed hash (the key ring's index key, purpose `contact-form`) of the time it was issued,
the domain and the role: a POST without a token this installation issued for this form in the
last `TOKEN_LIFETIME` is refused, so another site cannot make a visitor's browser post here and
a script must fetch the form first. Every request counts against the per-source limit of
`services.limiter("contact")` (429 with Retry-After); the flow adds a per-domain daily limit.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from regshield.api.deps import context_of, services_of
from regshield.errors import FieldError, NotFound, Throttled, ValidationFailed
from regshield.flows.context import ANONYMOUS
from regshield.flows.relay import (
    MAX_MESSAGE,
    MAX_SENDER_NAME,
    RelayMessage,
    RelayMessageSend,
    parse_role,
    relay_target_exists,
)
from regshield.flows.runner import run_flow
from regshield.rules.names import DomainName, parse_domain_name
from regshield.rules.redaction import ContactRole
from regshield.services import Services

router = APIRouter(include_in_schema=False)

TOKEN_LIFETIME = timedelta(hours=2)
TOKEN_CLOCK_SKEW = timedelta(minutes=1)
MAX_BODY_BYTES = 64 * 1024  # a 4000-character message percent-encoded, with room to spare
MAX_FIELDS = 16
FORM_FIELDS = ("sender_name", "sender_email", "message", "token")
FORM_TYPE = "application/x-www-form-urlencoded"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
ROLE_WORDS = {ContactRole.REGISTRANT: "registrant", ContactRole.TECHNICAL: "technical contact"}


def form_token(services: Services, domain: str, role: ContactRole, issued: int) -> str:
    """`<issued>.<keyed hash>`: issued (Unix seconds) for this form only."""
    digest = services.keyring.index("contact-form", f"{issued}:{domain}:{role.value}")
    return f"{issued}.{digest}"


def token_is_valid(services: Services, domain: str, role: ContactRole, token: str) -> bool:
    issued_text, _, _digest = token.partition(".")
    if not issued_text.isdigit() or len(issued_text) > 12:
        return False
    issued = int(issued_text)
    now = services.clock.now().timestamp()
    if not (now - TOKEN_LIFETIME.total_seconds() <= issued
            <= now + TOKEN_CLOCK_SKEW.total_seconds()):
        return False
    return hmac.compare_digest(form_token(services, domain, role, issued), token)


@router.get("/contact/{domain}/{role}", response_class=HTMLResponse)
async def contact_form(request: Request, domain: str, role: str) -> HTMLResponse:
    services = services_of(request)
    target = await _admit(services, request, domain, role)
    if isinstance(target, HTMLResponse):
        return target
    name, contact_role = target
    return _form_page(services, name, contact_role, {}, [])


@router.post("/contact/{domain}/{role}", response_class=HTMLResponse)
async def contact_send(request: Request, domain: str, role: str) -> HTMLResponse:
    services = services_of(request)
    target = await _admit(services, request, domain, role)
    if isinstance(target, HTMLResponse):
        return target
    name, contact_role = target
    form = await _read_form(request)
    if isinstance(form, HTMLResponse):
        return form
    values, errors = form
    if not token_is_valid(services, name.ascii, contact_role, values.get("token", "")):
        return _page("The form has expired", (
            "<p>This form was not issued here, or it was issued too long ago. "
            f'<a href="{escape(_form_path(name, contact_role))}">Open the form again</a> '
            "and send your message from there.</p>"), 403)
    try:
        if errors:
            raise ValidationFailed(errors)
        message = RelayMessage.parse(values.get("sender_name"), values.get("sender_email"),
                                     values.get("message"))
        await run_flow(services, ANONYMOUS, context_of(request),
                       RelayMessageSend(name.ascii, contact_role, message))
    except ValidationFailed as failed:
        return _form_page(services, name, contact_role, values, failed.errors, status=422)
    except NotFound:
        return _not_found()
    except Throttled as throttled:
        return _throttled(throttled.retry_after_seconds, throttled.detail)
    return _page("Message sent", (
        f"<p>Your message to the {ROLE_WORDS[contact_role]} of "
        f"<strong>{escape(name.unicode)}</strong> was sent. If they choose to answer, the "
        "answer comes to the address you gave.</p>"), 200)


async def _admit(services: Services, request: Request, domain: str,
                 role: str) -> tuple[DomainName, ContactRole] | HTMLResponse:
    """Every request to the form takes a token of its source's bucket first; then the
    form's domain and role, or the page that refuses the request."""
    source = request.client.host if request.client else None
    decision = await services.limiter("contact").check(source)
    if not decision.allowed:
        return _throttled(decision.retry_after, "Too many requests from your network")
    return await _target(services, domain, role)


def _throttled(retry_after: int, detail: str) -> HTMLResponse:
    response = _page("Too many requests", (
        f"<p>{escape(detail)}. Please try again in {retry_after} seconds.</p>"), 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


async def _target(services: Services, domain: str,
                  role: str) -> tuple[DomainName, ContactRole] | HTMLResponse:
    """The form's domain and role, or the 404 page: a malformed name, a role other than
    registrant or technical, a domain not sponsored here or without that contact."""
    try:
        name = parse_domain_name(domain, "domain")
        contact_role = parse_role(role)
    except (ValidationFailed, NotFound):
        return _not_found()
    if not await relay_target_exists(services, name.ascii, contact_role):
        return _not_found()
    return name, contact_role


async def _read_form(request: Request) -> tuple[dict[str, str], list[FieldError]] | HTMLResponse:
    """The form's fields (first value of each), with an error for each repeated field; or the
    page refusing a body that is not a bounded, UTF-8, form-encoded one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return _page("Unsupported form", f"<p>Send the form as {FORM_TYPE}.</p>", 415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _too_large()
    try:
        parsed = parse_qs(bytes(body).decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, encoding="utf-8", errors="strict",
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return _page("Unreadable form", "<p>The form could not be read: send it as UTF-8 "
                     f"text, with at most {MAX_FIELDS} fields.</p>", 400)
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for field_name in FORM_FIELDS:
        given = parsed.get(field_name)
        if not given:
            continue
        if len(given) > 1:
            errors.append(FieldError(field_name, "repeated", "must be sent once"))
        values[field_name] = given[0]
    return values, errors


def _too_large() -> HTMLResponse:
    return _page("Message too long", (
        f"<p>The form is larger than {MAX_BODY_BYTES // 1024} KiB; a message holds at most "
        f"{MAX_MESSAGE} characters.</p>"), 413)


def _not_found() -> HTMLResponse:
    return _page("No such contact", (
        "<p>No domain sponsored here has a contact at this address. The form exists for the "
        "registrant and technical contacts of the domains this registrar sponsors.</p>"), 404)


def _form_path(name: DomainName, role: ContactRole) -> str:
    return f"/contact/{quote(name.ascii, safe='')}/{role.value}"


def _form_page(services: Services, name: DomainName, role: ContactRole, values: dict[str, Any],
               errors: list[FieldError], *, status: int = 200) -> HTMLResponse:
    token = form_token(services, name.ascii, role, int(services.clock.now().timestamp()))
    problems = ""
    if errors:
        items = "".join(f"<li><code>{escape(e.field)}</code>: {escape(e.message)}</li>"
                        for e in errors)
        problems = f'<div role="alert"><p>The message was not sent:</p><ul>{items}</ul></div>'

    def value(key: str) -> str:
        return escape(str(values.get(key, "")))

    body = f"""<p>Write to the {ROLE_WORDS[role]} of <strong>{escape(name.unicode)}</strong>.
Your message is passed on by email; their address is not shown to you. Your address is given
to them so that they can answer if they wish.</p>
{problems}
<form method="post" action="{escape(_form_path(name, role))}">
<input type="hidden" name="token" value="{escape(token)}">
<p><label>Your name<br><input name="sender_name" required maxlength="{MAX_SENDER_NAME}"
 value="{value('sender_name')}"></label></p>
<p><label>Your email address<br><input name="sender_email" type="email" required
 maxlength="254" value="{value('sender_email')}"></label></p>
<p><label>Message<br><textarea name="message" required rows="12" cols="70"
 maxlength="{MAX_MESSAGE}">{value('message')}</textarea></label></p>
<p><button type="submit">Send</button></p>
</form>"""
    return _page(f"Contact the {ROLE_WORDS[role]} of {name.unicode}", body, status)


def _page(title: str, body: str, status: int) -> HTMLResponse:
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:42em;margin:2em auto;padding:0 1em}}
[role=alert]{{border-left:4px solid #b00;padding-left:1em}}</style></head>
<body><h1>{escape(title)}</h1>
{body}
</body></html>
"""
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
