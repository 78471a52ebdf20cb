"""Signing in through the API: logins, throttling, TOTP, recovery codes and API tokens."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
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


async def enable_totp(api: httpx.AsyncClient, who: Identity,
                      clock: FakeClock) -> tuple[str, list[str]]:
    """Enroll and confirm TOTP for `who`; the clock then moves to the next time step."""
    started = await api.post("/api/v1/auth/mfa/totp", headers=who.headers)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await api.post("/api/v1/auth/mfa/totp/confirm", headers=who.headers,
                               json={"otp": code_at(secret, clock.now())})
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(STEP)
    return secret, confirmed.json()["recovery_codes"]


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
    response = await api.post("/api/v1/auth/mfa/totp", headers=member.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["secret"]) >= 32
    assert body["uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["uri"]
    assert "issuer=regshield" in body["uri"]


async def test_totp_is_not_required_until_enrollment_is_confirmed(
        api: httpx.AsyncClient, member: Identity) -> None:
    assert (await api.post("/api/v1/auth/mfa/totp", headers=member.headers)).status_code == 200
    assert (await login(api, member.email)).status_code == 200
    assert (await api.get("/api/v1/me", headers=member.headers)).json()["totp_enabled"] is False


async def test_confirming_totp_returns_the_recovery_codes_once(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    secret, codes = await enable_totp(api, member, clock)
    assert len(codes) == policy(clock).recovery_code_count
    assert len(set(codes)) == len(codes)
    again = await api.post("/api/v1/auth/mfa/totp/confirm", headers=member.headers,
                           json={"otp": code_at(secret, clock.now())})
    assert_problem(again, 409, "conflict")
    assert "recovery_codes" not in again.json()
    me = await api.get("/api/v1/me", headers=member.headers)
    assert me.json()["totp_enabled"] is True


async def test_confirming_totp_with_a_wrong_code_is_refused_naming_otp(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    secret = (await api.post("/api/v1/auth/mfa/totp", headers=member.headers)).json()["secret"]
    wrong = code_at(secret, clock.now() + 10 * STEP)
    response = await api.post("/api/v1/auth/mfa/totp/confirm", headers=member.headers,
                              json={"otp": wrong})
    assert "otp" in field_errors(response)
    assert (await login(api, member.email)).status_code == 200  # still not enabled


async def test_enrolling_again_once_totp_is_enabled_conflicts(
        api: httpx.AsyncClient, member: Identity, clock: FakeClock) -> None:
    await enable_totp(api, member, clock)
    assert_problem(await api.post("/api/v1/auth/mfa/totp", headers=member.headers), 409,
                   "conflict")


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
    started = await api.post("/api/v1/auth/mfa/totp", headers=member.headers)
    secret = started.json()["secret"]
    code = code_at(secret, clock.now())
    confirmed = await api.post("/api/v1/auth/mfa/totp/confirm", headers=member.headers,
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
