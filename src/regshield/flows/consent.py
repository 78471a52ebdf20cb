"""The registrant's consent to publish registration data that is otherwise redacted
(Registration Data Policy §9; RDAP profile 2.7.9: consented data MUST NOT be redacted).

Consent is per domain, per field, and dated: `Domain.publish_consent` maps each consented field
to when consent was given. RDAP and WHOIS read it through rdds/record.py. Giving or withdrawing
consent is a change of the domain's public face, so it is recorded as an event naming the
fields (never their values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from regshield.errors import FieldError, NotFound, ValidationFailed
from regshield.flows.domains import need_step_up
from regshield.flows.runner import Tx
from regshield.rules.names import validate_domain_name
from regshield.rules.redaction import ContactRole, rules_for
from regshield.store.models import Account
from regshield.store.queries.domains import live_domain

# The registrant fields that are redacted unless the registrant consents.
CONSENTABLE: tuple[str, ...] = tuple(
    rule.field for rule in rules_for(ContactRole.REGISTRANT) if not rule.public)


@dataclass(frozen=True)
class ConsentView:
    domain: str
    fields: dict[str, str]  # field -> when consent was given (ISO 8601)


@dataclass(frozen=True)
class PublishConsentSet:
    """Set the fields the registrant consents to publish (the full set: fields left out are
    withdrawn). Giving consent needs a recent second factor.
    Raises PermissionDenied, NotFound, ValidationFailed."""

    name: Any
    fields: Any

    async def run(self, tx: Tx) -> ConsentView:
        tx.actor.require("domains", "write")
        errors: list[FieldError] = []
        parsed = validate_domain_name(self.name, "name", errors)
        wanted = _fields(self.fields, errors)
        if errors or parsed is None:
            raise ValidationFailed(errors)
        domain = await live_domain(tx.session, parsed.ascii)
        if domain is None:
            raise NotFound("no such domain")
        tx.actor.require_object("domains", "write", domain.account_id)
        current = dict(domain.publish_consent or {})
        given = sorted(set(wanted) - set(current))
        withdrawn = sorted(set(current) - set(wanted))
        if given:  # publishing personal data needs a recent second factor; withdrawing does not
            need_step_up(tx, "publishing registration data")
        if given or withdrawn:
            stamp = tx.now.isoformat()
            domain.publish_consent = {field: current.get(field, stamp) for field in wanted}
            domain.updated_at = tx.now
            account = await tx.session.get(Account, domain.account_id)
            tx.record("domains:publish-consent:changed",
                      account=account.public_id if account else None,
                      domain=domain.name, given=given, withdrawn=withdrawn)
        return ConsentView(domain.name, dict(domain.publish_consent))


def _fields(value: Any, errors: list[FieldError]) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        errors.append(FieldError("fields", "invalid", "must be a list of field names"))
        return []
    unknown = sorted({str(v)[:40] for v in value
                      if not isinstance(v, str) or v not in CONSENTABLE})
    if unknown:
        errors.append(FieldError(
            "fields", "not_consentable",
            f"{', '.join(unknown)}: only these registrant fields can be published by consent: "
            f"{', '.join(CONSENTABLE)}"))
    return sorted({v for v in value if v in CONSENTABLE})
