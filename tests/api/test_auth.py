"""Signing in through the API: logins, throttling, TOTP, recovery codes and API tokens."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, Identity, World
from sqlalchemy import select

from regshield.api.app import create_app
from regshield.clock import FakeClock
from regshield.flows.auth import TokenCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.notify.delivery import MAIL_DIRECTORY
from regshield.notify.handler import handlers
from regshield.outbox.worker import OutboxWorker
from regshield.policy.security import SecurityPolicy, security_policy
from regshield.security.totp import code_at
from regshield.services import Services
from regshield.store.models import Base, Event, RecoveryCode, User
from regshield.store.queries.events import list_events
from regshield.store.queries.users import user_by_public_id

PROBLEM = "urn:regshield:problem:"
STEP = timedelta(seconds=30)
CONTACT = {
    "name": "Ada Lovelace", "street": ["Unter den Linden 1"], "city": "Berlin",
    "postal_code": "10117", "country": "DE", "phone": "+49 30 1234567",
    "email": "ada@example.net",
}


# --- helpers ---------------------------------------------------------------------------------

def policy(clock: FakeClock) -> SecurityPolicy:
    return security_policy(clock.now())


async def login(api: httpx.AsyncClient, email: str, password: str = PASSWORD,
                otp: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": password}
    if otp is not None:
        body["otp"] = otp
    return await api.post("/api/v1/auth/login", json=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def events(services: Services, tag_prefix: str = "auth:") -> list[Event]:
    async with services.store.read() as session:
        return list(await list_events(session, tag_prefix=tag_prefix, limit=1000))


def event_text(event: Event) -> str:
    return json.dumps({
        "tag": event.tag, "actor": event.actor, "account": event.account,
        "channel": event.channel, "source_address": event.source_address,
        "request_id": event.request_id, "summary": event.summary,
    }, default=str)


async def stored_text(services: Services) -> str:
    """Every value of every row of every table, as text (bytes read as Latin-1)."""
    parts: list[str] = []
    async with services.store.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        parts.append(bytes(value).decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


async def stored_text_without_events(services: Services) -> str:
    """As stored_text, leaving out the event log and the outbox (which name source addresses
    on purpose)."""
    parts: list[str] = []
    async with services.store.read() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in ("events", "outbox"):
                continue
            for row in (await session.execute(select(table))).all():
                parts += [bytes(v).decode("latin-1") if isinstance(v, bytes) else str(v)
                          for v in row]
    return "\n".join(parts)


async def user_row(services: Services, public_id: str) -> User:
    async with services.store.read() as session:
        user = await user_by_public_id(session, public_id)
    assert user is not None
    return user


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def field_errors(response: httpx.Response) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for error in assert_problem(response, 422, "validation-failed")["errors"]:
        found.setdefault(error["field"], set()).add(error["code"])
    return found


async def signed_in(api: httpx.AsyncClient, who: Identity,
                    otp: str | None = None) -> dict[str, str]:
    """Headers with a login token of `who` (second factors are managed only with one)."""
    response = await login(api, who.email, otp=otp)
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


async def enrol_totp(api: httpx.AsyncClient, who: Identity,
                     clock: FakeClock) -> tuple[str, list[str], dict[str, str]]:
    """Enroll and confirm TOTP for `who` from a login token (returned, with the secret and
    the recovery codes); the clock then moves to the next time step."""
    headers = await signed_in(api, who)
    started = await api.post("/api/v1/auth/mfa/totp", headers=headers,
                             json={"password": PASSWORD})
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await api.post("/api/v1/auth/mfa/totp/confirm", headers=headers,
                               json={"otp": code_at(secret, clock.now())})
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(STEP)
    return secret, confirmed.json()["recovery_codes"], headers


async def enable_totp(api: httpx.AsyncClient, who: Identity,
                      clock: FakeClock) -> tuple[str, list[str]]:
    secret, codes, _ = await enrol_totp(api, who, clock)
    return secret, codes


def current_code(secret: str, clock: FakeClock) -> str:
    """A code of the current time step; the clock moves on, since a code is accepted once."""
    code = code_at(secret, clock.now())
    clock.advance(STEP)
    return code


async def delivered(services: Services) -> list[EmailMessage]:
    """Send what the outbox holds (to the mail directory) and read every message sent."""
    await OutboxWorker(services, handlers()).run_once()
    directory = services.settings.home / MAIL_DIRECTORY
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(directory.glob("*.eml"))]  # type: ignore[misc]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture
async def other_address(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client at another source address than the `api` fixture's 192.0.2.10."""
    transport = httpx.ASGITransport(app=create_app(services), client=("198.51.100.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as client:
        yield client


@pytest.fixture
async def account(world: World) -> str:
    return await world.account()


@pytest.fixture
async def member(world: World, account: str) -> Identity:
    return await world.user("member", account)


# --- login -----------------------------------------------------------------------------------

async def test_login_with_right_credentials_returns_a_token_that_works(
        api: httpx.AsyncClient, member: Identity) -> None:
    response = await login(api, member.email)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert token.startswith("rs_")
    me = await api.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["user_id"] == member.user_id
    assert me.json()["email"] == member.email


async def test_login_matches_the_email_whatever_its_case_and_surrounding_spaces(
        api: httpx.AsyncClient, member: Identity) -> None:
    response = await login(api, f"  {member.email.upper()} ")
    assert response.status_code == 200, response.text


async def test_wrong_password_and_unknown_email_get_the_same_answer(
        api: httpx.AsyncClient, member: Identity) -> None:
    wrong_password = await login(api, member.email, PASSWORD + "x")
    unknown_email = await login(api, "nobody-here@example.net")
    first = assert_problem(wrong_password, 401, "authentication-failed")
    second = assert_problem(unknown_email, 401, "authentication-failed")
    same = ("type", "title", "status", "detail")
    assert {k: first[k] for k in same} == {k: second[k] for k in same}
    assert wrong_password.headers.get("www-authenticate") == \
        unknown_email.headers.get("www-authenticate")
    assert "token" not in first


async def test_empty_password_is_refused(api: httpx.AsyncClient, member: Identity) -> None:
    assert_problem(await login(api, member.email, ""), 401, "authentication-failed")


async def test_every_login_attempt_leaves_an_event_without_email_or_password(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    wrong = "not the passphrase at all"
    assert (await login(api, member.email)).status_code == 200
    assert (await login(api, "nobody-here@example.net", wrong)).status_code == 401
    for _ in range(policy(clock).login_failures_per_user):
        assert (await login(api, member.email, wrong)).status_code == 401
    assert (await login(api, member.email)).status_code == 429

    logins = await events(services, "auth:login:")
    assert [e.tag for e in logins] == (
        ["auth:login:succeeded"]
        + ["auth:login:failed"] * (1 + policy(clock).login_failures_per_user)
        + ["auth:login:throttled"]
    )
    assert logins[0].actor == f"user:{member.user_id}"
    assert logins[0].summary["method"] == "password"
    assert {e.source_address for e in logins} == {"192.0.2.10"}
    assert {e.channel for e in logins} == {"api"}
    everything = "\n".join(event_text(e) for e in await events(services, ""))
    for secret in (member.email, member.email.split("@")[0], "nobody-here", PASSWORD, wrong):
        assert secret not in everything


async def test_auditor_sees_login_events_through_the_api(
        api: httpx.AsyncClient, world: World, member: Identity) -> None:
    auditor = await world.user("auditor")
    await login(api, member.email, "not the passphrase at all")
    await login(api, member.email)
    response = await api.get("/api/v1/events", params={"tag": "auth:login"},
                             headers=auditor.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["tag"] for i in items] == ["auth:login:failed", "auth:login:succeeded"]
    assert items[0]["summary"]["reason"] == "bad_credentials"
    assert items[0]["summary"]["user"] == member.user_id
    assert member.email not in response.text and PASSWORD not in response.text


async def test_login_token_stops_working_when_its_lifetime_ends(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    token = (await login(api, member.email)).json()["token"]
    clock.advance(policy(clock).login_token_lifetime - timedelta(seconds=1))
    assert (await api.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert_problem(await api.get("/api/v1/me", headers=bearer(token)), 401,
                   "authentication-failed")


async def test_logout_revokes_the_token_that_made_the_request(
        api: httpx.AsyncClient, member: Identity) -> None:
    token = (await login(api, member.email)).json()["token"]
    assert (await api.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 204
    assert (await api.get("/api/v1/me", headers=bearer(token))).status_code == 401
    assert (await api.get("/api/v1/me", headers=member.headers)).status_code == 200


async def test_request_without_a_token_is_asked_to_authenticate(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/me")
    assert_problem(response, 401, "authentication-required")
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- throttling ------------------------------------------------------------------------------

async def test_login_is_throttled_after_the_users_failure_limit_even_with_the_right_password(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    limit = policy(clock).login_failures_per_user
    for _ in range(limit):
        assert_problem(await login(api, member.email, "wrong guess number"), 401,
                       "authentication-failed")
    response = await login(api, member.email)
    body = assert_problem(response, 429, "throttled")
    block = policy(clock).login_block.total_seconds()
    retry_after = int(response.headers["retry-after"])
    assert block <= retry_after <= block + 1
    assert body["retry_after"] == retry_after
    assert "token" not in body


async def test_throttled_user_can_sign_in_again_once_the_block_ends(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    for _ in range(policy(clock).login_failures_per_user):
        await login(api, member.email, "wrong guess number")
    block = policy(clock).login_block
    clock.advance(block - timedelta(seconds=1))
    still = await login(api, member.email)
    assert_problem(still, 429, "throttled")
    assert 1 <= int(still.headers["retry-after"]) <= 2
    clock.advance(timedelta(seconds=1))
    assert (await login(api, member.email)).status_code == 200


async def test_successful_login_resets_the_users_failure_count(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    almost = policy(clock).login_failures_per_user - 1
    for _ in range(almost):
        assert (await login(api, member.email, "wrong guess number")).status_code == 401
    assert (await login(api, member.email)).status_code == 200
    for _ in range(almost):
        assert (await login(api, member.email, "wrong guess number")).status_code == 401
    assert (await login(api, member.email)).status_code == 200


async def test_failures_older_than_the_window_do_not_add_up(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    almost = policy(clock).login_failures_per_user - 1
    for _ in range(almost):
        assert (await login(api, member.email, "wrong guess number")).status_code == 401
    clock.advance(policy(clock).login_window)
    for _ in range(almost):
        assert (await login(api, member.email, "wrong guess number")).status_code == 401
    assert (await login(api, member.email)).status_code == 200


async def test_one_users_block_does_not_lock_out_another_user(
        api: httpx.AsyncClient, world: World, account: str, member: Identity,
        clock: FakeClock) -> None:
    colleague = await world.user("owner", account)
    for _ in range(policy(clock).login_failures_per_user):
        await login(api, member.email, "wrong guess number")
    assert (await login(api, member.email)).status_code == 429
    assert (await login(api, colleague.email)).status_code == 200


async def test_failures_from_one_address_throttle_it_and_no_other(
        api: httpx.AsyncClient, other_address: httpx.AsyncClient, member: Identity,
        clock: FakeClock) -> None:
    for attempt in range(policy(clock).login_failures_per_address):
        response = await login(api, f"guess-{attempt}@example.net", "wrong guess number")
        assert response.status_code == 401
    blocked = await login(api, member.email)
    assert_problem(blocked, 429, "throttled")
    assert int(blocked.headers["retry-after"]) >= policy(clock).login_block.total_seconds()
    assert (await login(other_address, member.email)).status_code == 200


# --- TOTP and recovery codes -----------------------------------------------------------------

async def test_totp_enrollment_returns_a_secret_and_an_otpauth_uri(
        api: httpx.AsyncClient, member: Identity) -> None:
    response = await api.post("/api/v1/auth/mfa/totp", headers=await signed_in(api, member),
                              json={"password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["secret"]) >= 32
    assert body["uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["uri"]
    assert "issuer=regshield" in body["uri"]


async def test_totp_is_not_required_until_enrollment_is_confirmed(
        api: httpx.AsyncClient, member: Identity) -> None:
    started = await api.post("/api/v1/auth/mfa/totp", headers=await signed_in(api, member),
                             json={"password": PASSWORD})
    assert started.status_code == 200
    assert (await login(api, member.email)).status_code == 200
    assert (await api.get("/api/v1/me", headers=member.headers)).json()["totp_enabled"] is False


async def test_confirming_totp_returns_the_recovery_codes_once(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    secret, codes, headers = await enrol_totp(api, member, clock)
    assert len(codes) == policy(clock).recovery_code_count
    assert len(set(codes)) == len(codes)
    again = await api.post("/api/v1/auth/mfa/totp/confirm", headers=headers,
                           json={"otp": code_at(secret, clock.now())})
    assert_problem(again, 409, "conflict")
    assert "recovery_codes" not in again.json()
    me = await api.get("/api/v1/me", headers=member.headers)
    assert me.json()["totp_enabled"] is True


async def test_confirming_totp_with_a_wrong_code_is_refused_naming_otp(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    headers = await signed_in(api, member)
    secret = (await api.post("/api/v1/auth/mfa/totp", headers=headers,
                             json={"password": PASSWORD})).json()["secret"]
    wrong = code_at(secret, clock.now() + 10 * STEP)
    response = await api.post("/api/v1/auth/mfa/totp/confirm", headers=headers,
                              json={"otp": wrong})
    assert "otp" in field_errors(response)
    assert (await login(api, member.email)).status_code == 200  # still not enabled


async def test_stolen_password_alone_cannot_enrol_totp_over_an_existing_factor(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, _, headers = await enrol_totp(api, member, clock)
    password_only = await api.post("/api/v1/auth/mfa/totp", headers=headers,
                                   json={"password": PASSWORD})
    assert_problem(password_only, 401, "second-factor-required")
    guessed = await api.post("/api/v1/auth/mfa/totp", headers=headers,
                             json={"password": PASSWORD, "otp": "000000"})
    assert_problem(guessed, 401, "authentication-failed")
    assert "secret" not in password_only.text + guessed.text
    for path in ("/api/v1/auth/mfa/totp/remove", "/api/v1/auth/mfa/recovery-codes"):
        assert_problem(await api.post(path, headers=headers, json={"password": PASSWORD}),
                       401, "second-factor-required")
    # the holder's own generator still signs in
    assert (await login(api, member.email, otp=current_code(secret, clock))).status_code == 200
    assert (await events(services, "auth:totp:failed"))[-1].summary["reason"] == "totp_invalid"


async def test_automation_token_cannot_enrol_totp(
        api: httpx.AsyncClient, services: Services, member: Identity) -> None:
    """An API token (scope `*`) is refused every change of password or second factor, even
    with the right password: only a console session or a login token may make them."""
    attempts = [
        ("/api/v1/auth/mfa/totp", {"password": PASSWORD}),
        ("/api/v1/auth/mfa/totp/confirm", {"otp": "123456"}),
        ("/api/v1/auth/mfa/totp/remove", {"password": PASSWORD}),
        ("/api/v1/auth/mfa/recovery-codes", {"password": PASSWORD}),
        ("/api/v1/auth/password", {"current_password": PASSWORD,
                                   "new_password": "another long passphrase"}),
    ]
    for path, body in attempts:
        refused = await api.post(path, headers=member.headers, json=body)
        assert_problem(refused, 403, "permission-denied")
        assert "secret" not in refused.json() and "recovery_codes" not in refused.json()
    user = await user_row(services, member.user_id)
    assert (user.totp_pending_sealed, user.totp_enabled_at) == (None, None)
    assert (await login(api, member.email)).status_code == 200


async def test_enrolling_totp_needs_the_password_and_wrong_ones_count_toward_the_throttle(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    headers = await signed_in(api, member)
    for _ in range(policy(clock).login_failures_per_user):
        wrong = await api.post("/api/v1/auth/mfa/totp", headers=headers,
                               json={"password": "wrong guess number"})
        assert_problem(wrong, 401, "authentication-failed")
    right = await api.post("/api/v1/auth/mfa/totp", headers=headers,
                           json={"password": PASSWORD})
    assert_problem(right, 429, "throttled")
    assert_problem(await login(api, member.email), 429, "throttled")


async def test_replacing_totp_with_the_current_code_tells_the_user_and_the_owners(
        api: httpx.AsyncClient, services: Services, world: World, account: str,
        member: Identity, clock: FakeClock) -> None:
    owner = await world.user("owner", account)
    old, old_codes, headers = await enrol_totp(api, member, clock)
    started = await api.post("/api/v1/auth/mfa/totp", headers=headers, json={
        "password": PASSWORD, "otp": current_code(old, clock)})
    assert started.status_code == 200, started.text
    new = started.json()["secret"]
    confirmed = await api.post("/api/v1/auth/mfa/totp/confirm", headers=headers,
                               json={"otp": current_code(new, clock)})
    assert confirmed.status_code == 200, confirmed.text
    assert_problem(await login(api, member.email, otp=current_code(old, clock)), 401,
                   "authentication-failed")
    assert_problem(await login(api, member.email, otp=old_codes[0]), 401,
                   "authentication-failed")
    assert (await login(api, member.email, otp=current_code(new, clock))).status_code == 200

    messages = await delivered(services)
    enabled = [m for m in messages if "Two-factor authentication turned on" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in enabled) == sorted([member.email, owner.email] * 2)
    replaced = [m for m in enabled if "was replaced" in text_of(m)]
    assert sorted(str(m["To"]) for m in replaced) == sorted([member.email, owner.email])
    for message in messages:
        for secret in (old, new, PASSWORD, *old_codes, *confirmed.json()["recovery_codes"]):
            assert secret not in message.as_string()


async def test_removing_totp_needs_the_password_and_a_current_code_and_tells_the_owners(
        api: httpx.AsyncClient, services: Services, world: World, account: str,
        member: Identity, clock: FakeClock) -> None:
    owner = await world.user("owner", account)
    secret, codes, headers = await enrol_totp(api, member, clock)
    wrong_password = await api.post("/api/v1/auth/mfa/totp/remove", headers=headers, json={
        "password": "wrong guess number", "otp": current_code(secret, clock)})
    assert_problem(wrong_password, 401, "authentication-failed")
    removed = await api.post("/api/v1/auth/mfa/totp/remove", headers=headers,
                             json={"password": PASSWORD, "otp": codes[0]})
    assert removed.status_code == 204, removed.text
    assert (await login(api, member.email)).status_code == 200
    assert [e.tag for e in await events(services, "auth:totp:removed")] == ["auth:totp:removed"]
    messages = [m for m in await delivered(services)
                if "Two-factor authentication turned off" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in messages) == sorted([member.email, owner.email])


async def test_regenerated_recovery_codes_replace_the_old_ones_and_the_user_is_told(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, old_codes, headers = await enrol_totp(api, member, clock)
    password_only = await api.post("/api/v1/auth/mfa/recovery-codes", headers=headers,
                                   json={"password": PASSWORD})
    assert_problem(password_only, 401, "second-factor-required")
    fresh = await api.post("/api/v1/auth/mfa/recovery-codes", headers=headers,
                           json={"password": PASSWORD, "otp": current_code(secret, clock)})
    assert fresh.status_code == 200, fresh.text
    new_codes = fresh.json()["recovery_codes"]
    assert len(new_codes) == policy(clock).recovery_code_count
    assert_problem(await login(api, member.email, otp=old_codes[1]), 401,
                   "authentication-failed")
    assert (await login(api, member.email, otp=new_codes[0])).status_code == 200
    messages = [m for m in await delivered(services)
                if "Recovery codes replaced" in str(m["Subject"])]
    assert [str(m["To"]) for m in messages] == [member.email]
    assert not any(code in messages[0].as_string() for code in old_codes + new_codes)


async def test_password_change_needs_the_current_password_and_ends_every_other_credential(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    new_password = "a different long passphrase"
    headers = await signed_in(api, member)
    other_login = await signed_in(api, member)
    wrong = await api.post("/api/v1/auth/password", headers=headers, json={
        "current_password": "wrong guess number", "new_password": new_password})
    assert_problem(wrong, 401, "authentication-failed")
    weak = await api.post("/api/v1/auth/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": "short"})
    assert "new_password" in field_errors(weak)
    changed = await api.post("/api/v1/auth/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": new_password})
    assert changed.status_code == 204, changed.text
    assert (await api.get("/api/v1/me", headers=headers)).status_code == 200
    for revoked in (other_login, member.headers):
        assert_problem(await api.get("/api/v1/me", headers=revoked), 401,
                       "authentication-failed")
    assert_problem(await login(api, member.email), 401, "authentication-failed")
    assert (await login(api, member.email, new_password)).status_code == 200
    messages = [m for m in await delivered(services) if "Password changed" in str(m["Subject"])]
    assert [str(m["To"]) for m in messages] == [member.email]
    assert new_password not in messages[0].as_string() and PASSWORD not in messages[0].as_string()


async def test_password_change_on_a_totp_account_needs_a_current_code(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    secret, _, headers = await enrol_totp(api, member, clock)
    body = {"current_password": PASSWORD, "new_password": "a different long passphrase"}
    assert_problem(await api.post("/api/v1/auth/password", headers=headers, json=body), 401,
                   "second-factor-required")
    changed = await api.post("/api/v1/auth/password", headers=headers,
                             json={**body, "otp": current_code(secret, clock)})
    assert changed.status_code == 204, changed.text


async def test_a_new_api_token_is_told_to_its_user_without_its_value(
        api: httpx.AsyncClient, services: Services, member: Identity) -> None:
    created = await api.post("/api/v1/tokens", headers=member.headers, json={"name": "ci"})
    assert created.status_code == 201, created.text
    messages = [m for m in await delivered(services) if "New API token" in str(m["Subject"])]
    assert [str(m["To"]) for m in messages] == [member.email]
    assert created.json()["token_id"] in text_of(messages[0])
    assert created.json()["token"] not in messages[0].as_string()


async def test_a_login_from_a_new_address_is_told_to_the_user_but_the_first_login_is_not(
        api: httpx.AsyncClient, other_address: httpx.AsyncClient, services: Services,
        member: Identity) -> None:
    assert (await login(api, member.email)).status_code == 200
    assert (await login(api, member.email)).status_code == 200
    assert not [m for m in await delivered(services) if "new address" in str(m["Subject"])]
    assert (await login(other_address, member.email)).status_code == 200
    assert (await login(other_address, member.email)).status_code == 200
    messages = [m for m in await delivered(services) if "new address" in str(m["Subject"])]
    assert [str(m["To"]) for m in messages] == [member.email]
    assert "198.51.100.7" in text_of(messages[0])
    # the addresses seen are kept only as keyed hashes
    assert "198.51.100.7" not in await stored_text_without_events(services)


async def test_login_without_a_code_is_refused_once_totp_is_enabled(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    await enable_totp(api, member, clock)
    response = await login(api, member.email)
    body = assert_problem(response, 401, "second-factor-required")
    assert body["type"].endswith("second-factor-required")
    assert "token" not in body
    failed = (await events(services, "auth:login:failed"))[-1]
    assert failed.summary["reason"] == "second_factor_missing"


async def test_wrong_password_on_a_totp_account_does_not_reveal_that_a_code_is_needed(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    await enable_totp(api, member, clock)
    assert_problem(await login(api, member.email, "wrong guess number"), 401,
                   "authentication-failed")


async def test_login_with_a_current_totp_code_succeeds(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, _ = await enable_totp(api, member, clock)
    response = await login(api, member.email, otp=code_at(secret, clock.now()))
    assert response.status_code == 200, response.text
    me = await api.get("/api/v1/me", headers=bearer(response.json()["token"]))
    assert me.status_code == 200
    succeeded = (await events(services, "auth:login:succeeded"))[-1]
    assert succeeded.summary["method"] == "password+totp"


async def test_totp_code_with_a_wrong_password_is_refused(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    secret, _ = await enable_totp(api, member, clock)
    assert_problem(await login(api, member.email, "wrong guess number",
                               otp=code_at(secret, clock.now())), 401, "authentication-failed")


async def test_wrong_totp_code_is_refused(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, _ = await enable_totp(api, member, clock)
    wrong = code_at(secret, clock.now() + 10 * STEP)
    assert_problem(await login(api, member.email, otp=wrong), 401, "authentication-failed")
    assert (await events(services, "auth:login:failed"))[-1].summary["reason"] == "totp_invalid"


async def test_totp_code_is_refused_when_replayed(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, _ = await enable_totp(api, member, clock)
    code = code_at(secret, clock.now())
    assert (await login(api, member.email, otp=code)).status_code == 200
    replay = await login(api, member.email, otp=code)
    assert_problem(replay, 401, "authentication-failed")
    failed = (await events(services, "auth:login:failed"))[-1]
    assert failed.summary["reason"] == "totp_replayed"
    assert failed.summary["user"] == member.user_id


async def test_code_that_confirmed_enrollment_cannot_be_used_to_sign_in(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    headers = await signed_in(api, member)
    started = await api.post("/api/v1/auth/mfa/totp", headers=headers,
                             json={"password": PASSWORD})
    secret = started.json()["secret"]
    code = code_at(secret, clock.now())
    confirmed = await api.post("/api/v1/auth/mfa/totp/confirm", headers=headers,
                               json={"otp": code})
    assert confirmed.status_code == 200
    assert_problem(await login(api, member.email, otp=code), 401, "authentication-failed")


async def test_code_of_the_next_time_step_works_after_one_was_used(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    secret, _ = await enable_totp(api, member, clock)
    assert (await login(api, member.email, otp=code_at(secret, clock.now()))).status_code == 200
    clock.advance(STEP)
    assert (await login(api, member.email, otp=code_at(secret, clock.now()))).status_code == 200


async def test_otp_of_non_ascii_digits_is_refused_not_an_error(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    await enable_totp(api, member, clock)
    arabic_indic = "\u0661\u0662\u0663\u0664\u0665\u0666"
    assert_problem(await login(api, member.email, otp=arabic_indic), 401,
                   "authentication-failed")


async def test_recovery_code_signs_in_once(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    _, codes = await enable_totp(api, member, clock)
    first = await login(api, member.email, otp=codes[0])
    assert first.status_code == 200, first.text
    assert (await api.get("/api/v1/me", headers=bearer(first.json()["token"]))).status_code == 200
    succeeded = (await events(services, "auth:login:succeeded"))[-1]
    assert succeeded.summary["method"] == "password+recovery_code"
    assert_problem(await login(api, member.email, otp=codes[0]), 401, "authentication-failed")
    failed = (await events(services, "auth:login:failed"))[-1]
    assert failed.summary["reason"] == "recovery_code_invalid"
    # the other codes still work, typed in capitals and without dashes
    assert (await login(api, member.email, otp=codes[1].upper().replace("-", " "))
            ).status_code == 200


async def test_recovery_codes_and_totp_secret_are_not_stored_in_plain_text(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, codes = await enable_totp(api, member, clock)
    user = await user_row(services, member.user_id)
    assert user.totp_secret_sealed is not None
    assert user.totp_pending_sealed is None
    assert secret.encode() not in user.totp_secret_sealed
    assert base64.b32decode(secret) not in user.totp_secret_sealed
    async with services.store.read() as session:
        rows = (await session.execute(
            select(RecoveryCode).where(RecoveryCode.user_id == user.id))).scalars().all()
    assert len(rows) == len(codes)
    hashes = {row.code_hash for row in rows}
    for code in codes:
        assert code not in hashes and code.replace("-", "") not in hashes
    everything = await stored_text(services)
    for value in [secret, *codes, *(c.replace("-", "") for c in codes)]:
        assert value not in everything


async def test_totp_secret_and_recovery_codes_never_reach_the_event_log(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    secret, codes = await enable_totp(api, member, clock)
    tags = [e.tag for e in await events(services, "auth:totp:")]
    assert tags == ["auth:totp:enrollment_started", "auth:totp:enabled"]
    everything = "\n".join(event_text(e) for e in await events(services, ""))
    for value in [secret, *codes]:
        assert value not in everything


# --- API tokens ------------------------------------------------------------------------------

async def test_token_created_by_the_cli_flow_works_on_the_api(
        api: httpx.AsyncClient, services: Services, member: Identity) -> None:
    issued = await run_flow(services, system_actor("cli"), RequestContext("cli"),
                            TokenCreate(member.user_id, "deploy"))
    assert issued.value.startswith("rs_")
    me = await api.get("/api/v1/me", headers=bearer(issued.value))
    assert me.status_code == 200
    assert me.json()["user_id"] == member.user_id


async def test_token_created_through_the_api_is_shown_once(
        api: httpx.AsyncClient, member: Identity) -> None:
    created = await api.post("/api/v1/tokens", headers=member.headers,
                             json={"name": "deploy", "expires_days": 30})
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["token_id"]
    assert token.startswith("rs_")
    assert (await api.get("/api/v1/me", headers=bearer(token))).status_code == 200
    listed = await api.get("/api/v1/tokens", headers=member.headers)
    assert listed.status_code == 200
    assert token_id in {t["token_id"] for t in listed.json()}
    assert token not in listed.text and member.token not in listed.text
    for entry in listed.json():
        assert not {"token", "token_hash", "secret"} & set(entry)


async def test_tokens_are_stored_only_as_digests(
        api: httpx.AsyncClient, services: Services, member: Identity) -> None:
    created = await api.post("/api/v1/tokens", headers=member.headers, json={"name": "deploy"})
    signed_in = await login(api, member.email)
    everything = await stored_text(services)
    for token in (created.json()["token"], signed_in.json()["token"], member.token):
        assert token not in everything
        assert token.removeprefix("rs_") not in everything


async def test_expired_token_is_refused(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    created = await api.post("/api/v1/tokens", headers=member.headers, json={"expires_days": 1})
    token = created.json()["token"]
    clock.advance(timedelta(days=1) - timedelta(seconds=1))
    assert (await api.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert_problem(await api.get("/api/v1/me", headers=bearer(token)), 401,
                   "authentication-failed")


async def test_token_without_expires_days_gets_the_default_lifetime(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    created = await api.post("/api/v1/tokens", headers=member.headers, json={})
    token = created.json()["token"]
    clock.advance(policy(clock).api_token_default_lifetime - timedelta(seconds=1))
    assert (await api.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert (await api.get("/api/v1/me", headers=bearer(token))).status_code == 401


async def test_revoked_token_is_refused(
        api: httpx.AsyncClient, services: Services, member: Identity) -> None:
    created = (await api.post("/api/v1/tokens", headers=member.headers, json={})).json()
    revoked = await api.delete(f"/api/v1/tokens/{created['token_id']}", headers=member.headers)
    assert revoked.status_code == 204
    assert_problem(await api.get("/api/v1/me", headers=bearer(created["token"])), 401,
                   "authentication-failed")
    assert (await api.get("/api/v1/me", headers=member.headers)).status_code == 200
    listed = {t["token_id"]: t for t in
              (await api.get("/api/v1/tokens", headers=member.headers)).json()}
    assert listed[created["token_id"]]["revoked_at"] is not None
    event = (await events(services, "auth:token:revoked"))[-1]
    assert event.summary["token"] == created["token_id"]


async def test_scoped_token_reads_contacts_but_cannot_create_them(
        api: httpx.AsyncClient, world: World, account: str) -> None:
    owner = await world.user("owner", account)
    created = await api.post("/api/v1/tokens", headers=owner.headers,
                             json={"name": "read-only", "scopes": ["account:contacts:read"]})
    assert created.status_code == 201, created.text
    scoped = bearer(created.json()["token"])
    assert (await api.post("/api/v1/contacts", headers=owner.headers, json=CONTACT)
            ).status_code == 201
    listed = await api.get("/api/v1/contacts", headers=scoped)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 1
    assert_problem(await api.post("/api/v1/contacts", headers=scoped, json=CONTACT), 403,
                   "permission-denied")


async def test_scoped_token_cannot_mint_a_wider_token(
        api: httpx.AsyncClient, member: Identity) -> None:
    created = await api.post("/api/v1/tokens", headers=member.headers,
                             json={"name": "token-admin", "scopes": ["self:tokens:write"]})
    assert created.status_code == 201, created.text
    scoped = bearer(created.json()["token"])
    wider = await api.post("/api/v1/tokens", headers=scoped, json={"scopes": ["*"]})
    assert wider.status_code in (403, 422), wider.text
    assert "token" not in wider.json()
    same = await api.post("/api/v1/tokens", headers=scoped,
                          json={"scopes": ["self:tokens:write"]})
    assert same.status_code == 201, same.text


async def test_expires_days_out_of_range_is_refused_naming_expires_days(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    longest = policy(clock).api_token_max_lifetime.days
    for days in (0, -1, longest + 1):
        response = await api.post("/api/v1/tokens", headers=member.headers,
                                  json={"expires_days": days})
        assert field_errors(response) == {"expires_days": {"out_of_range"}}, days
    assert (await api.post("/api/v1/tokens", headers=member.headers,
                           json={"expires_days": longest})).status_code == 201


async def test_token_request_with_bad_scopes_and_name_lists_every_reason(
        api: httpx.AsyncClient, member: Identity) -> None:
    response = await api.post("/api/v1/tokens", headers=member.headers,
                              json={"name": " ", "expires_days": 0, "scopes": ["root"]})
    assert set(field_errors(response)) == {"name", "expires_days", "scopes"}
    empty = await api.post("/api/v1/tokens", headers=member.headers, json={"scopes": []})
    assert "scopes" in field_errors(empty)


async def test_user_cannot_revoke_another_users_token(
        api: httpx.AsyncClient, services: Services, world: World, account: str,
        member: Identity) -> None:
    owner = await world.user("owner", account)
    theirs = (await api.post("/api/v1/tokens", headers=member.headers, json={})).json()
    response = await api.delete(f"/api/v1/tokens/{theirs['token_id']}", headers=owner.headers)
    assert_problem(response, 404, "not-found")
    unknown = await api.delete("/api/v1/tokens/tok_0000000000000000", headers=owner.headers)
    assert {k: unknown.json()[k] for k in ("type", "title", "detail")} == \
        {k: response.json()[k] for k in ("type", "title", "detail")}
    assert (await api.get("/api/v1/me", headers=bearer(theirs["token"]))).status_code == 200
    assert await events(services, "auth:token:revoked") == []


async def test_token_list_shows_only_the_users_own_tokens(
        api: httpx.AsyncClient, world: World, account: str, member: Identity) -> None:
    owner = await world.user("owner", account)
    theirs = (await api.post("/api/v1/tokens", headers=member.headers, json={})).json()
    listed = await api.get("/api/v1/tokens", headers=owner.headers)
    assert theirs["token_id"] not in {t["token_id"] for t in listed.json()}


async def test_unknown_or_malformed_bearer_value_is_refused(api: httpx.AsyncClient) -> None:
    for value in ("rs_" + "A" * 43, "not-a-token", "rs_" + "x" * 200):
        assert_problem(await api.get("/api/v1/me", headers=bearer(value)), 401,
                       "authentication-failed")


# --- passwords of new users ------------------------------------------------------------------

async def test_new_users_password_is_refused_for_every_reason_at_once(
        api: httpx.AsyncClient, world: World, services: Services) -> None:
    admin = await world.user("admin")
    response = await api.post("/api/v1/users", headers=admin.headers, json={
        "email": "password@example.net", "password": "password", "role": "support"})
    errors = field_errors(response)
    assert errors == {"password": {"too_short", "too_common", "matches_email"}}
    # nothing was written: the only user created is the admin of this test
    assert [e.summary["role"] for e in await events(services, "users:user:created")] == \
        ["admin"]


async def test_common_password_of_sufficient_length_is_refused(
        api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")
    response = await api.post("/api/v1/users", headers=admin.headers, json={
        "email": "grace@example.net", "password": "password123456", "role": "support"})
    assert field_errors(response) == {"password": {"too_common"}}


async def test_password_equal_to_the_email_is_refused(
        api: httpx.AsyncClient, world: World) -> None:
    admin = await world.user("admin")
    response = await api.post("/api/v1/users", headers=admin.headers, json={
        "email": "grace.hopper.cobol@example.net", "password": "Grace.Hopper.Cobol@example.net",
        "role": "support"})
    assert field_errors(response) == {"password": {"matches_email"}}


async def test_password_is_stored_as_an_argon2id_hash(
        api: httpx.AsyncClient, world: World, services: Services) -> None:
    admin = await world.user("admin")
    response = await api.post("/api/v1/users", headers=admin.headers, json={
        "email": "grace@example.net", "password": PASSWORD, "role": "support"})
    assert response.status_code == 201, response.text
    user = await user_row(services, response.json()["user_id"])
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in await stored_text(services)
    assert (await login(api, "grace@example.net")).status_code == 200


async def test_a_read_only_token_can_sign_itself_out_but_revoke_no_other_token(
        api: httpx.AsyncClient, member: Identity) -> None:
    read_only = (await api.post("/api/v1/tokens", headers=member.headers,
                                json={"scopes": ["account:contacts:read"]})).json()
    other = (await api.post("/api/v1/tokens", headers=member.headers, json={})).json()
    refused = await api.delete(f"/api/v1/tokens/{other['token_id']}",
                               headers=bearer(read_only["token"]))
    assert_problem(refused, 404, "not-found")
    assert (await api.get("/api/v1/me", headers=bearer(other["token"]))).status_code == 200
    signed_out = await api.post("/api/v1/auth/logout", headers=bearer(read_only["token"]))
    assert signed_out.status_code == 204
    assert (await api.get("/api/v1/contacts", headers=bearer(read_only["token"]))).status_code \
        == 401


async def test_checking_a_password_never_holds_the_write_lock(
        api: httpx.AsyncClient, services: Services, member: Identity,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 takes tens of milliseconds; on SQLite every other change would wait behind it."""
    import regshield.flows.auth as auth_flows

    verify = auth_flows.verify_password
    writes_open_during_checks: list[bool] = []

    def watched(password_hash: str | None, password: str) -> bool:
        writes_open_during_checks.append(services.store.writing)
        return verify(password_hash, password)

    monkeypatch.setattr(auth_flows, "verify_password", watched)
    assert (await login(api, member.email)).status_code == 200
    assert (await login(api, member.email, "not the password at all")).status_code == 401

    assert writes_open_during_checks == [False, False]


# --- throttling without locking the holder out, and one code accepted once -------------------

async def test_right_password_still_logs_in_after_an_attacker_failed_five_times_from_elsewhere(
        api: httpx.AsyncClient, other_address: httpx.AsyncClient, member: Identity,
        clock: FakeClock) -> None:
    limit = policy(clock).login_failures_per_user
    for _ in range(limit):
        assert_problem(await login(other_address, member.email, "wrong guess number"), 401,
                       "authentication-failed")
    # the attacker's source is blocked for this user, even with the right password ...
    assert_problem(await login(other_address, member.email, "another guess"), 429, "throttled")
    assert_problem(await login(other_address, member.email), 429, "throttled")
    # ... but the holder, from a source that never failed, signs in
    assert (await login(api, member.email)).status_code == 200


async def test_a_guarded_user_blocks_each_failing_source_after_its_first_failure(
        api: httpx.AsyncClient, other_address: httpx.AsyncClient, services: Services,
        member: Identity, clock: FakeClock) -> None:
    """Once the user's failures from all sources reach the limit, a further source gets one
    guess, then waits: spreading guesses over addresses gains one guess per address."""
    for _ in range(policy(clock).login_failures_per_user):
        await login(other_address, member.email, "wrong guess number")
    transport = httpx.ASGITransport(app=create_app(services), client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as third:
        assert_problem(await login(third, member.email, "wrong guess"), 401,
                       "authentication-failed")
        assert_problem(await login(third, member.email), 429, "throttled")
    assert (await login(api, member.email)).status_code == 200


async def test_totp_code_is_accepted_once_under_concurrent_step_ups(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    if services.store.is_sqlite:
        pytest.skip("SQLite runs one writer at a time; the race needs PostgreSQL")
    secret, _ = await enable_totp(api, member, clock)
    headers = await signed_in(api, member, otp=current_code(secret, clock))
    code = code_at(secret, clock.now())
    answers = await asyncio.gather(*(
        api.post("/api/v1/domains/nothing-here.test/registrar-lock",
                 headers={**headers, "X-OTP": code})
        for _ in range(8)))
    # a replayed code is refused (401), and after five refusals the source waits (429)
    stepped_up = [a for a in answers if a.status_code not in (401, 429)]
    assert len(stepped_up) == 1, [a.status_code for a in answers]
    assert stepped_up[0].status_code == 404
    outcomes = [e.tag for e in await events(services, "auth:step-up:")]
    assert outcomes.count("auth:step-up:succeeded") == 1


async def test_totp_code_is_accepted_once_under_concurrent_logins(
        api: httpx.AsyncClient, services: Services, member: Identity, clock: FakeClock) -> None:
    if services.store.is_sqlite:
        pytest.skip("SQLite runs one writer at a time; the race needs PostgreSQL")
    secret, _ = await enable_totp(api, member, clock)
    code = code_at(secret, clock.now())
    answers = await asyncio.gather(*(login(api, member.email, otp=code) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 5
