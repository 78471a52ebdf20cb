"""The WHOIS Accuracy Program over HTTP: the public verification link a registrant follows
(`GET /verify/{token}`), and the inaccuracy complaints staff file about a domain
(`POST /api/v1/domains/{name}/accuracy-complaints`).

Opening the link changes nothing: it answers a page with one button, which posts to the same
address. Mail scanners and link previews open every link in a message; a link that verified on
GET would be verified by them, not by the registrant. The post answers verified, already used,
expired or unknown, and only the first changes anything; whatever the token, the answer is a
page, never an error trace. Lifting a suspension is sent to the registry before the page is
answered.
"""

from __future__ import annotations

import html
from datetime import datetime

import structlog
from fastapi import APIRouter, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from regshield.api.deps import ActorDep, ContextDep, ServicesDep
from regshield.flows.accuracy import AccuracyComplaint, VerificationConfirm, VerificationView
from regshield.flows.context import ANONYMOUS
from regshield.flows.operations import execute_all
from regshield.flows.runner import run_flow
from regshield.rules.accuracy import Verdict

router = APIRouter()
log = structlog.get_logger("regshield.accuracy")
MAX_TOKEN = 128  # a token is 43 symbols; anything much longer is not worth hashing

PAGES: dict[Verdict, tuple[int, str, str]] = {
    Verdict.VERIFIED: (status.HTTP_200_OK, "Thank you",
                       "Your registration data is verified. If any of your domains was "
                       "suspended for want of this verification, it resolves again shortly."),
    Verdict.ALREADY_USED: (status.HTTP_409_CONFLICT, "Already used",
                           "This link was used already; the registration data needs no "
                           "further confirmation through it."),
    Verdict.EXPIRED: (status.HTTP_410_GONE, "Link expired",
                      "This link is no longer valid. Use the link in the most recent "
                      "message, or ask your registrar to send a new one."),
    Verdict.UNKNOWN: (status.HTTP_404_NOT_FOUND, "Unknown link",
                      "This verification link is not known. Check that it was copied "
                      "completely."),
}


UNAVAILABLE = (status.HTTP_503_SERVICE_UNAVAILABLE, "Please try again",
               "The link could not be checked just now; nothing was changed. Please open it "
               "again in a few minutes.")


HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'none'; form-action 'self'"}


def _document(title: str, content: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<meta name=\"robots\" content=\"noindex\"></head>"
            f"<body><h1>{html.escape(title)}</h1>{content}</body></html>\n")


def page(verdict: Verdict | None) -> HTMLResponse:
    """The answer page; None when the link could not be checked."""
    code, title, text = PAGES[verdict] if verdict is not None else UNAVAILABLE
    return HTMLResponse(_document(title, f"<p>{html.escape(text)}</p>"), status_code=code,
                        headers={**HEADERS, "X-Verification-Result":
                                 verdict.value if verdict else "unavailable"})


@router.get("/verify/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm_page(token: str) -> HTMLResponse:
    """The page the link opens: one button that confirms. Nothing is read or changed."""
    if len(token) > MAX_TOKEN:
        return page(Verdict.UNKNOWN)
    content = ("<p>Please confirm that the registration data your registrar sent you is "
               "correct.</p><form method=\"post\">"
               "<button type=\"submit\">Confirm my registration data</button></form>")
    return HTMLResponse(_document("Confirm your registration data", content),
                        headers={**HEADERS, "X-Verification-Result": "unconfirmed"})


@router.post("/verify/{token}", response_class=HTMLResponse, include_in_schema=False)
async def verify(token: str, services: ServicesDep, context: ContextDep) -> HTMLResponse:
    if len(token) > MAX_TOKEN:
        return page(Verdict.UNKNOWN)
    try:
        confirmation = await run_flow(services, ANONYMOUS, context, VerificationConfirm(token))
    except Exception as exc:
        # The generic error handler would log the path, and the path holds the token.
        log.error("accuracy.verify_failed", error_type=type(exc).__name__,
                  request_id=context.request_id)
        return page(None)
    for operation in confirmation.operations:
        # The lift is committed and queued: the outbox finishes what cannot be sent now.
        try:
            await execute_all(services, operation)
        except Exception as exc:
            log.warning("accuracy.lift_deferred", operation=operation,
                        error_type=type(exc).__name__, request_id=context.request_id)
    return page(confirmation.verdict)


class ComplaintIn(BaseModel):
    reference: str | None = Field(default=None, max_length=64,
                                  description="The complaint's ticket number, if any")


class VerificationOut(BaseModel):
    id: str
    contact: str
    state: str
    cause: str
    domain: str | None
    started_at: datetime
    deadline: datetime

    @classmethod
    def of(cls, view: VerificationView) -> VerificationOut:
        return cls(id=view.id, contact=view.contact, state=view.state, cause=view.cause,
                   domain=view.domain, started_at=view.started_at, deadline=view.deadline)


# Mounted at the root with the public link, so the API prefix is spelled out here.
@router.post("/api/v1/domains/{name}/accuracy-complaints", response_model=VerificationOut,
             status_code=status.HTTP_201_CREATED, tags=["domains"])
async def complain(name: str, body: ComplaintIn, actor: ActorDep, services: ServicesDep,
                   context: ContextDep) -> VerificationOut:
    """Staff record an inaccuracy complaint: the registrant is verified again and the
    15-day clock starts anew."""
    view = await run_flow(services, actor, context, AccuracyComplaint(name, body.reference))
    return VerificationOut.of(view)
