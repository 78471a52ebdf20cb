"""Who controls a hosted zone: publication, the proof-of-control challenge, and the zones that
stop being served when their name is registered here by another account.

A zone is served only in the state `active` (rules/zones.py ZONE_STATES); the publisher
(dns/publisher.py) drops any other from what the embedded server answers. This module has no
import of the domain flows, so that `flows/operations.py` and `flows/poll.py` can call
`suspend_zones_of_others` when a registration or an inbound transfer settles.
"""

from __future__ import annotations

from sqlalchemy import select

from regshield.flows.runner import Tx
from regshield.notify.messages import Change
from regshield.notify.requests import notice, to_account_owners
from regshield.security.keyring import KeyRing
from regshield.store.models import Domain, Zone
from regshield.store.queries.accounts import public_ids

PUBLISH_KIND = "dns:publish"
CHALLENGE_PURPOSE = "zone-challenge"
TOKEN_CHARACTERS = 40


def publish(tx: Tx, zone: Zone) -> None:
    """Queue the zone's publication (dns/publisher.py signs what is stored when it runs, and
    serves it only while it is active)."""
    tx.enqueue(PUBLISH_KIND, {"zone": zone.name},
               dedupe_key=f"dns:{zone.name}:{zone.serial}:{zone.state}:{tx.now.isoformat()}")


def challenge_token(keyring: KeyRing, zone: str, account: str) -> str:
    """The TXT value that proves `account` controls `zone`: a keyed hash of both, so that it
    is never stored, cannot be made from what the database holds, and stays the same for the
    account (a zone made again, or replaced by someone else's unverified one, keeps it)."""
    return "regshield-" + keyring.index(CHALLENGE_PURPOSE,
                                        f"{zone}|{account}")[:TOKEN_CHARACTERS]


async def suspend_zones_of_others(tx: Tx, domain: Domain) -> list[str]:
    """`domain` is now sponsored here: stop serving the zones other accounts host at or below
    its name. They are kept, suspended, with an event and a notice to their account's owners;
    deleting them stays possible. The sponsor's own zones there that waited for proof of
    control need none any more: they are served. Returns the names suspended."""
    name = domain.name.rstrip(".").lower() + "."
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = (await tx.session.execute(select(Zone).where(
        Zone.deleted_at.is_(None), Zone.state != "suspended",
        (Zone.name == name) | Zone.name.like(f"%.{escaped}", escape="\\")))).scalars().all()
    if not found:
        return []
    labels = await public_ids(tx.session, {zone.account_id for zone in found})
    for zone in found:
        if zone.account_id == domain.account_id and zone.state == "unverified":
            zone.state, zone.verified_at = "active", tx.now
            zone.updated_at = tx.now
            tx.record("dns:zone:verified", account=labels[zone.account_id], zone=zone.name,
                      domain=domain.name, reason="registered_by_the_account")
            publish(tx, zone)
    zones = [zone for zone in found if zone.account_id != domain.account_id]
    for zone in zones:
        zone.state, zone.suspended_at, zone.updated_at = "suspended", tx.now, tx.now
        tx.record("dns:zone:suspended", account=labels[zone.account_id], zone=zone.name,
                  domain=domain.name, reason="registered_by_another_account")
        notice(tx, change=Change.ZONE_SUSPENDED, recipients=[
            to_account_owners(labels[zone.account_id])], details={"zone": zone.name})
        publish(tx, zone)  # the publisher drops it from what is served
    return [zone.name for zone in zones]
