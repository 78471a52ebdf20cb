"""Hosted DNS zones: create, read, edit RRsets, import and export zone files, secondaries.

Owners in paths are relative to the zone (`www`, `@` for the apex). Every change answers with
the zone's new serial once it is stored; signing, serving and NOTIFY follow from the outbox.
The sensitive ones (docs/architecture.md, "Sensitive changes") take a one-time code as `X-OTP`:
the flows decide when it is needed.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response, status

from regshield.api.deps import ActorDep, ContextDep, ServicesDep, SteppedUpActorDep
from regshield.api.schemas import (
    KeysAdvancedOut,
    RolloverIn,
    RRsetChangeOut,
    RRsetIn,
    RRsetOut,
    SecondaryAddedOut,
    SecondaryIn,
    SecondaryOut,
    ZoneImportIn,
    ZoneImportOut,
    ZoneIn,
    ZoneOut,
)
from regshield.flows.runner import run_flow
from regshield.flows.zone_keys import ZoneDsTakeover, ZoneKeyCompromised, ZoneKeyRollover
from regshield.flows.zones import (
    RRsetChange,
    RRsetDelete,
    RRsetPut,
    SecondaryAdd,
    ZoneCreate,
    ZoneDelete,
    ZoneImport,
    ZoneVerify,
    ZoneView,
    rrsets_read,
    zone_export,
    zone_list,
    zone_read,
)

router = APIRouter(tags=["zones"])
ZONE_FILE_TYPE = "text/dns"  # RFC 4027


def _zone(view: ZoneView) -> ZoneOut:
    return ZoneOut.model_validate(asdict(view))


def _change(change: RRsetChange) -> RRsetChangeOut:
    return RRsetChangeOut.model_validate(asdict(change))


@router.post("/zones", response_model=ZoneOut, status_code=status.HTTP_201_CREATED)
async def create(body: ZoneIn, actor: SteppedUpActorDep, services: ServicesDep,
                 context: ContextDep) -> ZoneOut:
    return _zone(await run_flow(services, actor, context, ZoneCreate(
        body.name, body.dnssec, body.policy, body.denial, body.serial_scheme, body.account)))


@router.get("/zones", response_model=list[ZoneOut])
async def list_zones(actor: ActorDep, services: ServicesDep) -> list[ZoneOut]:
    return [_zone(view) for view in await zone_list(services, actor)]


@router.get("/zones/{name}", response_model=ZoneOut)
async def read(name: str, actor: ActorDep, services: ServicesDep) -> ZoneOut:
    return _zone(await zone_read(services, actor, name))


@router.delete("/zones/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(name: str, actor: SteppedUpActorDep, services: ServicesDep,
                 context: ContextDep) -> Response:
    await run_flow(services, actor, context, ZoneDelete(name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/zones/{name}/verify", response_model=ZoneOut)
async def verify(name: str, actor: ActorDep, services: ServicesDep,
                 context: ContextDep) -> ZoneOut:
    """Serve a zone once its challenge TXT record is seen at every server the parent
    delegates it to (422 `challenge` with each server's answer while it is not)."""
    return _zone(await run_flow(services, actor, context, ZoneVerify(name)))


@router.get("/zones/{name}/rrsets", response_model=list[RRsetOut])
async def rrsets(name: str, actor: ActorDep, services: ServicesDep) -> list[RRsetOut]:
    return [RRsetOut.model_validate(asdict(view))
            for view in await rrsets_read(services, actor, name)]


@router.put("/zones/{name}/rrsets/{owner}/{rtype}", response_model=RRsetChangeOut)
async def put_rrset(name: str, owner: str, rtype: str, body: RRsetIn, actor: SteppedUpActorDep,
                    services: ServicesDep, context: ContextDep) -> RRsetChangeOut:
    return _change(await run_flow(services, actor, context, RRsetPut(
        name, owner, rtype, body.ttl, body.records)))


@router.delete("/zones/{name}/rrsets/{owner}/{rtype}", response_model=RRsetChangeOut)
async def delete_rrset(name: str, owner: str, rtype: str, actor: SteppedUpActorDep,
                       services: ServicesDep, context: ContextDep) -> RRsetChangeOut:
    return _change(await run_flow(services, actor, context, RRsetDelete(name, owner, rtype)))


@router.get("/zones/{name}/export", response_class=Response,
            responses={200: {"content": {ZONE_FILE_TYPE: {}}}})
async def export(name: str, actor: ActorDep, services: ServicesDep) -> Response:
    return Response(await zone_export(services, actor, name), media_type=ZONE_FILE_TYPE)


@router.post("/zones/{name}/import", response_model=ZoneImportOut)
async def import_zone(name: str, body: ZoneImportIn, actor: SteppedUpActorDep,
                      services: ServicesDep, context: ContextDep) -> ZoneImportOut:
    report = await run_flow(services, actor, context, ZoneImport(name, body.zone_file,
                                                                force=body.force))
    return ZoneImportOut.model_validate(asdict(report))


@router.post("/zones/{name}/secondaries", response_model=SecondaryAddedOut,
             status_code=status.HTTP_201_CREATED)
async def add_secondary(name: str, body: SecondaryIn, actor: ActorDep, services: ServicesDep,
                        context: ContextDep) -> SecondaryAddedOut:
    added = await run_flow(services, actor, context, SecondaryAdd(
        name, body.address, body.port, body.tsig_key))
    return SecondaryAddedOut(secondary=SecondaryOut.model_validate(asdict(added.secondary)),
                             tsig_key=added.tsig_key, tsig_secret=added.tsig_secret)


@router.post("/zones/{name}/rollover", response_model=KeysAdvancedOut)
async def rollover(name: str, body: RolloverIn, actor: SteppedUpActorDep,
                   services: ServicesDep, context: ContextDep) -> KeysAdvancedOut:
    """Start a key rollover now (one at a time per zone). Needs a step-up (`X-OTP`)."""
    result = await run_flow(services, actor, context, ZoneKeyRollover(name, body.role))
    return KeysAdvancedOut.model_validate(asdict(result))


@router.post("/zones/{name}/keys/{key}/compromised", response_model=KeysAdvancedOut)
async def compromised(name: str, key: str, actor: SteppedUpActorDep, services: ServicesDep,
                      context: ContextDep) -> KeysAdvancedOut:
    """Declare a key compromised: an emergency rollover replaces it. Needs a step-up."""
    result = await run_flow(services, actor, context, ZoneKeyCompromised(name, key))
    return KeysAdvancedOut.model_validate(asdict(result))


@router.post("/zones/{name}/ds/takeover", response_model=KeysAdvancedOut)
async def ds_takeover(name: str, actor: SteppedUpActorDep, services: ServicesDep,
                      context: ContextDep) -> KeysAdvancedOut:
    """Let the DS of the zone's keys replace DS records at the parent that regshield did not
    put there (the zone's `ds_held`). Needs a step-up."""
    result = await run_flow(services, actor, context, ZoneDsTakeover(name))
    return KeysAdvancedOut.model_validate(asdict(result))
