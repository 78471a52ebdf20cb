"""What every domain command of the sandbox needs: the canonical form of a name it serves, the
domain registered under it, its sponsor, and the values kept in its JSON columns."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import ValidationFailed
from regshield.registry.codec import DomainContact, ResultCode, Secret, Status
from regshield.registry.sandbox.models import SandboxDomain
from regshield.registry.sandbox.refusals import Refusal
from regshield.registry.sandbox.state import live_domain
from regshield.rules.names import parse_domain_name, parse_nameservers
from regshield.security.transfer_codes import transfer_code_hash, verify_transfer_code


def served_name(raw: str, tlds: Iterable[str]) -> str:
    """The canonical A-label form of a name this registry serves, or a Refusal: 2005 not a
    domain name, 2306 outside the served TLDs or not at the second level."""
    try:
        name = parse_domain_name(raw, "domain:name")
    except ValidationFailed as exc:
        raise Refusal(ResultCode.PARAMETER_VALUE_SYNTAX_ERROR,
                      f"domain:name: {exc.errors[0].message}") from None
    served = tuple(tlds)
    if name.tld not in served:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"domain:name: .{name.tld} is not served by this registry "
                      f"(served: {', '.join(served)})")
    if len(name.labels) != 2:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      "domain:name: names are registered at the second level only")
    return name.ascii


async def existing(session: AsyncSession, name: str) -> SandboxDomain:
    """The domain registered under `name`, or a Refusal: 2303."""
    domain = await live_domain(session, name)
    if domain is None:
        raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST, f"{name} is not registered")
    return domain


def check_sponsor(domain: SandboxDomain, client: str) -> None:
    """Refusal 2201 unless `client` sponsors the domain."""
    if domain.sponsor_id != client:
        raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                      f"{domain.name} is sponsored by another registrar")


def shown_statuses(statuses: Iterable[str]) -> list[str]:
    """The statuses to report: "ok" alone when there is none (RFC 5731 section 2.3)."""
    values = sorted(set(statuses) - {"ok"})
    return values or ["ok"]


def status_values(statuses: Iterable[Status]) -> frozenset[str]:
    return frozenset(status.value for status in statuses)


def nameserver_names(values: tuple[str, ...]) -> list[str]:
    """Host names in A-label form, or a Refusal: 2004 too many, 2306 listed twice, 2005 not
    a host name."""
    try:
        return [name.ascii for name in parse_nameservers(list(values), "domain:hostObj")]
    except ValidationFailed as exc:
        codes = {error.code for error in exc.errors}
        code = (ResultCode.PARAMETER_VALUE_RANGE_ERROR if "too_many" in codes
                else ResultCode.PARAMETER_VALUE_POLICY_ERROR if codes == {"duplicate"}
                else ResultCode.PARAMETER_VALUE_SYNTAX_ERROR)
        raise Refusal(code, f"{exc.errors[0].field}: {exc.errors[0].message}") from None


def contact_rows(contacts: Iterable[DomainContact]) -> list[dict[str, str]]:
    return [{"type": contact.type, "id": contact.id} for contact in contacts]


def contact_keys(rows: Iterable[dict[str, str]]) -> list[tuple[str, str]]:
    return [(row["type"], row["id"]) for row in rows]


def auth_info_hash(secret: Secret) -> str | None:
    """The salted hash of an authInfo; an empty one means none is set (RFC 9154 section 4.2).
    The plaintext is never kept (section 4.3)."""
    code = secret.reveal()
    return transfer_code_hash(code) if code.strip() else None


def auth_info_matches(secret: Secret, stored_hash: str | None) -> bool:
    code = secret.reveal()
    return bool(stored_hash) and bool(code.strip()) \
        and verify_transfer_code(code, stored_hash or "")


__all__ = ["auth_info_hash", "auth_info_matches", "check_sponsor", "contact_keys",
           "contact_rows", "existing", "nameserver_names", "served_name", "shown_statuses",
           "status_values"]
