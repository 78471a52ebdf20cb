"""A read-only credential never changes anything: every write route of the real application
(enumerated from `app.routes`, so a new one is covered the day it is added) refuses the
read-only staff role and every read-only token scope, with a body that would otherwise be
valid, against a live domain, its zone, contacts and a disclosure request that exist."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, Identity, World
from contact_samples import contact_body
from domains.conftest import NS, Holder, Registry, holder, registry
from domains.test_lifecycle import register
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from sqlalchemy import func, select

from regshield.api.app import API_PREFIX, create_app
from regshield.api.deps import actor_of, stepped_up_actor_of
from regshield.api.routers.disclosure import optional_actor
from regshield.flows.auth import TokenCreate
from regshield.flows.zones import ZoneCreate
from regshield.security.permissions import RESOURCES
from regshield.services import Services
from regshield.store.models import Event

__all__ = ["holder", "registry"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DOMAIN = "example.test"
ACTOR_DEPENDENCIES = (actor_of, stepped_up_actor_of, optional_actor)
# Write routes that take no credential at all; a bearer token changes nothing there.
PUBLIC = {
    ("POST", f"{API_PREFIX}/auth/login"): "signs in with a password",
    ("POST", f"{API_PREFIX}/invitations/accept"):
        "accepts an invitation by its single-use token and sets the new user's password",
}
# Routes that act on the caller's own user only. The auditor may secure its own account
# (and answers there may change only that user); a read-only *token scope* is refused.
OWN_USER = {
    ("POST", f"{API_PREFIX}/auth/mfa/totp"): "enrols the caller's own second factor",
    ("POST", f"{API_PREFIX}/auth/mfa/totp/confirm"): "confirms the caller's own factor",
    ("POST", f"{API_PREFIX}/tokens"): "a token of the caller, never wider than the caller",
}
# Signing out ends the credential in use, whatever it may do otherwise.
ENDS_ITSELF = {("POST", f"{API_PREFIX}/auth/logout")}
# Flows that answer 404 for an object the actor may not touch, so existence never leaks.
HIDDEN_AS_NOT_FOUND = {("DELETE", f"{API_PREFIX}/tokens/{{token_id}}"),
                       ("POST", f"{API_PREFIX}/disclosure-requests/{{reference}}/withdraw")}
REFUSED = {401, 403}
DENIED_TAG = "authz:permission:denied"


def _body_model(route: APIRoute) -> type[BaseModel] | None:
    """The model of the route's JSON body, if it takes one."""
    if not route.dependant.body_params:
        return None
    annotation = route.dependant.body_params[0].field_info.annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise AssertionError(f"cannot tell the body model of {route.path}")


SAMPLE_BY_TYPE: dict[str, Any] = {"string": "sample", "integer": 1, "number": 1,
                                  "boolean": True, "array": ["sample"], "object": {}}


def generated_body(model: type[BaseModel]) -> dict[str, Any]:
    """A body for a model no sample below names (a route added since): every required field,
    a value of its documented type. If the route answers 422 to it, add a sample."""
    properties = model.model_json_schema().get("properties", {})
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            schema = properties.get(info.alias or name, {})
            kinds = [schema.get("type")] + [option.get("type")
                                            for option in schema.get("anyOf", [])]
            body[info.alias or name] = next(
                (SAMPLE_BY_TYPE[kind] for kind in kinds if kind in SAMPLE_BY_TYPE), "sample")
    return body


def _takes_credential(dependant: Dependant) -> bool:
    return any(d.call in ACTOR_DEPENDENCIES or _takes_credential(d)
               for d in dependant.dependencies)


@dataclass(frozen=True)
class WriteRoute:
    method: str
    path: str  # as served, with the router's prefix
    route: APIRoute


def write_routes(services: Services) -> Iterator[WriteRoute]:
    """Every write route of the application under /api/v1, as it serves them."""
    for context in iter_route_contexts(create_app(services).routes):
        route, path = context.original_route, context.path
        if isinstance(route, APIRoute) and path and path.startswith(API_PREFIX + "/"):
            for method in sorted((context.methods or set()) & WRITE_METHODS):
                yield WriteRoute(method, path, route)


@dataclass
class Estate:
    """What the credentials are turned loose on: a customer's live domain, hosted zone,
    contact, token and disclosure request."""

    holder: Holder
    account: str
    owner_token_id: str
    disclosure: str
    bodies: dict[str, Callable[[], dict[str, Any]]]

    def path(self, write: WriteRoute) -> str:
        values = {"name": DOMAIN, "handle": self.holder.contact, "owner": "www",
                  "rtype": "A", "key": "1", "token_id": self.owner_token_id,
                  "reference": self.disclosure, "request_id": "rlr_0000000000000000",
                  "account_id": self.account}
        path = write.path
        for parameter in write.route.dependant.path_params:
            assert parameter.name in values, f"no sample value for {{{parameter.name}}}"
            path = path.replace(f"{{{parameter.name}}}", values[parameter.name])
        return path


@pytest.fixture
async def estate(api: httpx.AsyncClient, world: World, holder: Holder,
                 registry: Registry) -> Estate:
    registered = await register(api, holder, DOMAIN)
    assert registered.status_code == 201, registered.text
    account = holder.identity.account
    assert account is not None
    await world.flow(ZoneCreate(DOMAIN, dnssec=False, account=account))
    # Filed by the customer itself, so that its read-only tokens are the requester's own.
    filed = await api.post(f"{API_PREFIX}/disclosure-requests", headers=holder.headers,
                           json=disclosure_body())
    assert filed.status_code == 201, filed.text
    tokens = (await api.get(f"{API_PREFIX}/tokens", headers=holder.headers)).json()
    contact = holder.contact
    bodies: dict[str, Callable[[], dict[str, Any]]] = {
        "OtpIn": lambda: {"otp": "123456"},
        "TokenCreateIn": lambda: {"name": "more", "scopes": ["*"]},
        "ContactIn": lambda: contact_body(account=account),
        "ContactPatch": lambda: {"name": "Mallory Example", "email": "m@evil.example"},
        "AccountIn": lambda: {"name": "an account nobody asked for"},
        "UserIn": lambda: {"email": "new-user@example.net", "password": PASSWORD,
                           "role": "owner", "account": account},
        "RegistrarPatch": lambda: {"name": "Someone Else's Registrar"},
        "DomainIn": lambda: {"name": "another.test", "registrant": contact, "years": 1,
                             "nameservers": NS, "account": account},
        "RenewIn": lambda: {"years": 1},
        "NameserversIn": lambda: {"nameservers": ["ns1.evil.example", "ns2.evil.example"]},
        "DsIn": lambda: {"ds": []},
        "RegistrarLockIn": lambda: {},
        "RegistrantIn": lambda: {"registrant": contact, "opt_out_of_transfer_lock": True},
        "ContactsIn": lambda: {"tech": contact},
        "TransferIn": lambda: {"name": "elsewhere.test", "auth_code": "Abc-12345-xyz!",
                               "account": account},
        "TransferRejectIn": lambda: {"reason": "fraud"},
        "LockCredentialIn": lambda: {"lock_email": "lock@example.net",
                                     "lock_password": "another long lock passphrase"},
        "RegistryLockIn": lambda: {"action": "unlock", "lock_password": "whatever it is"},
        "RegistryLockVerifyIn": lambda: {"code": "12345678"},
        "PublishConsentIn": lambda: {"fields": ["organization"]},
        "ZoneIn": lambda: {"name": "zone.example", "dnssec": False, "account": account},
        "RRsetIn": lambda: {"ttl": 300, "records": ["192.0.2.66"]},
        "ZoneImportIn": lambda: {"zone_file": "www 300 IN A 192.0.2.66\n"},
        "SecondaryIn": lambda: {"address": "192.0.2.53", "port": 53},
        "RolloverIn": lambda: {"role": "zsk"},
        "DisclosureRequestIn": disclosure_body,
        "DecisionIn": lambda: {"decision": "approved", "rationale": "a lawful purpose"},
        "ComplaintIn": lambda: {"reference": "T-1"},
    }
    return Estate(holder, account, tokens[0]["token_id"], filed.json()["id"], bodies)


def disclosure_body() -> dict[str, Any]:
    return {"domain": DOMAIN, "requester_name": "Rita Requester",
            "requester_email": "rita@law.example", "requester_organization": "Law LLP",
            "purpose": "legal_claim", "legal_basis": "a claim before the court",
            "roles": ["registrant"], "fields": ["name", "email"]}


async def read_only_credentials(world: World, holder: Holder) -> dict[str, Identity]:
    """The read-only role, and read-only scopes on the widest staff role and on the
    customer's own owner role: every `...:read` scope a token may carry."""
    auditor = await world.user("auditor")
    admin = await world.user("admin")
    account = holder.identity.account
    credentials = {"auditor": auditor}
    for who, scope in (admin, "registrar"), (holder.identity, "account"):
        for pattern in ("*:*:read", f"{scope}:*:read",
                        *(f"{scope}:{resource}:read" for resource in RESOURCES)):
            issued = await world.flow(TokenCreate(who.user_id, f"ro {pattern}",
                                                  scopes=(pattern,)))
            credentials[f"{who.role} token scoped {pattern}"] = Identity(
                who.user_id, who.email, who.role, account if who is holder.identity else None,
                issued.value)
    return credentials


async def last_seq(services: Services) -> int:
    async with services.store.read() as session:
        return int((await session.execute(select(func.max(Event.seq)))).scalar_one() or 0)


async def events_after(services: Services, seq: int) -> list[Event]:
    async with services.store.read() as session:
        return list(await session.scalars(select(Event).where(Event.seq > seq)
                                          .order_by(Event.seq)))


async def test_every_write_route_refuses_every_read_only_role_and_scope(
        api: httpx.AsyncClient, services: Services, world: World, estate: Estate) -> None:
    credentials = await read_only_credentials(world, estate.holder)
    routes = list(write_routes(services))
    assert len(routes) > 30, "the walk found too few write routes"
    failures: list[str] = []
    for write in routes:
        method, key = write.method, (write.method, write.path)
        if not _takes_credential(write.route.dependant):
            assert key in PUBLIC, f"{method} {write.path} takes no credential: say why in PUBLIC"
            continue
        model = _body_model(write.route)
        body = None if model is None else estate.bodies.get(
            model.__name__, functools.partial(generated_body, model))
        for label, who in credentials.items():
            if key in ENDS_ITSELF:  # a credential of its own, which the request may end
                issued = await world.flow(TokenCreate(who.user_id, "ends", scopes=("*:*:read",)
                                                      if "scoped" in label else ("*",)))
                who = Identity(who.user_id, who.email, who.role, who.account, issued.value)
            before = await last_seq(services)
            answer = await api.request(
                method, estate.path(write), headers=who.headers,
                json=body() if body is not None else None)
            changes = [e for e in await events_after(services, before) if e.tag != DENIED_TAG]
            where = f"{method} {write.path} as {label}: {answer.status_code} {answer.text[:160]}"
            if key in ENDS_ITSELF:
                if not (answer.is_success and [e.tag for e in changes] == ["auth:token:revoked"]):
                    failures.append(f"{where} (may only end itself: {changes})")
            elif key in OWN_USER and label == "auditor":
                if answer.status_code >= 500 or any(
                        not e.tag.startswith("auth:") or e.actor != f"user:{who.user_id}"
                        for e in changes):
                    failures.append(f"{where} (changed more than the auditor's own user)")
            elif answer.status_code not in REFUSED | (
                    {404} if key in HIDDEN_AS_NOT_FOUND else set()) or changes:
                failures.append(f"{where} changes={[e.tag for e in changes]}")
    assert not failures, "\n".join(failures)
