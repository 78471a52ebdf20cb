"""Console sessions: issued by the login flow, separate from API tokens, ended by idling or
signing out."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from conftest import PASSWORD, Identity, World

from regshield.clock import FakeClock
from regshield.errors import (
    AuthenticationFailed,
    AuthenticationRequired,
    NotFound,
    PermissionDenied,
    SecondFactorRequired,
)
from regshield.flows.auth import (
    ConsoleSessionEnd,
    IssuedCredential,
    TotpConfirm,
    TotpEnroll,
    UserLogin,
)
from regshield.flows.context import ANONYMOUS, RequestContext
from regshield.flows.runner import run_flow
from regshield.policy.security import SecurityPolicy, security_policy
from regshield.security.authentication import actor_for_bearer, actor_for_console_session
from regshield.security.tokens import digest
from regshield.security.totp import code_at
from regshield.services import Services
from regshield.store.models import ConsoleSession
from regshield.store.queries.events import list_events
from regshield.store.queries.users import session_by_hash

CONSOLE = RequestContext("console", "192.0.2.20")


def policy(clock: FakeClock) -> SecurityPolicy:
    return security_policy(clock.now())


async def console_login(services: Services, email: str, password: str = PASSWORD,
                        otp: str | None = None) -> IssuedCredential:
    issued = await run_flow(services, ANONYMOUS, CONSOLE,
                            UserLogin(email, password, otp, credential="console"))
    assert issued is not None
    return issued


@pytest.fixture
async def member(world: World) -> Identity:
    return await world.user("member", await world.account())


async def test_console_login_issues_a_session_value_not_an_api_token(
        services: Services, member: Identity) -> None:
    issued = await console_login(services, member.email)
    assert issued.value.startswith("rss_")
    actor, _ = await actor_for_console_session(services, issued.value)
    assert actor.user_public_id == member.user_id
    assert actor.account_public_id == member.account
    assert actor.token_id is None


async def test_console_login_leaves_an_event_naming_the_console(
        services: Services, member: Identity) -> None:
    await console_login(services, member.email)
    async with services.store.read() as session:
        event = (await list_events(session, tag_prefix="auth:login:succeeded"))[-1]
    assert event.summary["credential"] == "console"
    assert event.channel == "console"
    assert event.source_address == "192.0.2.20"
    assert member.email not in str(event.summary)


async def test_console_login_with_a_wrong_password_is_refused(
        services: Services, member: Identity) -> None:
    with pytest.raises(AuthenticationFailed):
        await console_login(services, member.email, "wrong guess number")


async def test_console_session_is_refused_by_the_api(
        api: httpx.AsyncClient, services: Services, member: Identity) -> None:
    issued = await console_login(services, member.email)
    response = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {issued.value}"})
    assert response.status_code == 401
    with pytest.raises(AuthenticationFailed):
        await actor_for_bearer(services, issued.value)


async def test_api_token_is_refused_as_a_console_session(
        services: Services, member: Identity) -> None:
    with pytest.raises(AuthenticationRequired):
        await actor_for_console_session(services, member.token)
    api_login = await run_flow(services, ANONYMOUS, CONSOLE, UserLogin(member.email, PASSWORD))
    assert api_login is not None and api_login.value.startswith("rs_")
    with pytest.raises(AuthenticationRequired):
        await actor_for_console_session(services, api_login.value)


async def test_unknown_session_value_is_refused(services: Services, member: Identity) -> None:
    issued = await console_login(services, member.email)
    with pytest.raises(AuthenticationFailed):
        await actor_for_console_session(services, issued.value[:-2] + "xx")
    with pytest.raises(AuthenticationRequired):
        await actor_for_console_session(services, None)


async def test_console_session_ends_after_the_idle_timeout(
        services: Services, member: Identity, clock: FakeClock) -> None:
    issued = await console_login(services, member.email)
    clock.advance(policy(clock).console_session_idle - timedelta(seconds=1))
    await actor_for_console_session(services, issued.value)
    clock.advance(policy(clock).console_session_idle)
    with pytest.raises(AuthenticationFailed):
        await actor_for_console_session(services, issued.value)


async def test_activity_keeps_a_console_session_alive_until_its_absolute_limit(
        services: Services, member: Identity, clock: FakeClock) -> None:
    issued = await console_login(services, member.email)
    rules = policy(clock)
    pace = rules.console_session_idle - timedelta(minutes=5)
    elapsed = timedelta(0)
    while elapsed + pace < rules.console_session_absolute:
        clock.advance(pace)
        elapsed += pace
        await actor_for_console_session(services, issued.value)
    assert elapsed > rules.console_session_idle * 2  # idling alone would have ended it
    clock.advance(rules.console_session_absolute - elapsed)
    with pytest.raises(AuthenticationFailed):
        await actor_for_console_session(services, issued.value)


async def test_console_session_is_refused_after_sign_out(
        services: Services, member: Identity) -> None:
    issued = await console_login(services, member.email)
    actor, session_hash = await actor_for_console_session(services, issued.value)
    await run_flow(services, actor, CONSOLE, ConsoleSessionEnd(session_hash))
    with pytest.raises(AuthenticationFailed):
        await actor_for_console_session(services, issued.value)
    async with services.store.read() as session:
        ended = await list_events(session, tag_prefix="auth:session:ended")
    assert [e.actor for e in ended] == [f"user:{member.user_id}"]


async def test_signing_out_ends_only_that_session(
        services: Services, member: Identity) -> None:
    first = await console_login(services, member.email)
    second = await console_login(services, member.email)
    actor, session_hash = await actor_for_console_session(services, first.value)
    await run_flow(services, actor, CONSOLE, ConsoleSessionEnd(session_hash))
    again, _ = await actor_for_console_session(services, second.value)
    assert again.user_public_id == member.user_id
    await actor_for_bearer(services, member.token)


async def test_another_user_cannot_end_someones_session(
        services: Services, world: World, member: Identity) -> None:
    other = await world.user("member", await world.account())
    mine = await console_login(services, member.email)
    theirs = await console_login(services, other.email)
    _, their_hash = await actor_for_console_session(services, theirs.value)
    actor, _ = await actor_for_console_session(services, mine.value)
    with pytest.raises(NotFound):
        await run_flow(services, actor, CONSOLE, ConsoleSessionEnd(their_hash))
    await actor_for_console_session(services, theirs.value)


async def test_console_session_value_is_stored_only_as_its_digest(
        services: Services, member: Identity) -> None:
    issued = await console_login(services, member.email)
    async with services.store.read() as session:
        record = await session_by_hash(session, digest(issued.value))
        rows = (await session.execute(ConsoleSession.__table__.select())).all()
    assert record is not None
    assert all(issued.value not in str(row) for row in rows)


async def test_console_login_on_a_totp_account_needs_the_code_and_records_it(
        services: Services, member: Identity, clock: FakeClock) -> None:
    first = await console_login(services, member.email)
    actor, _ = await actor_for_console_session(services, first.value)
    enrollment = await run_flow(services, actor, CONSOLE, TotpEnroll(PASSWORD))
    await run_flow(services, actor, CONSOLE,
                   TotpConfirm(code_at(enrollment.secret, clock.now())))
    clock.advance(timedelta(seconds=30))
    with pytest.raises(SecondFactorRequired):
        await console_login(services, member.email)
    issued = await console_login(services, member.email,
                                 otp=code_at(enrollment.secret, clock.now()))
    signed_in, _ = await actor_for_console_session(services, issued.value)
    assert signed_in.second_factor_at == clock.now()


async def test_an_api_token_cannot_enrol_totp_even_in_the_flow(
        services: Services, member: Identity) -> None:
    actor = await actor_for_bearer(services, member.token)
    with pytest.raises(PermissionDenied):
        await run_flow(services, actor, CONSOLE, TotpEnroll(PASSWORD))


async def test_password_only_console_session_has_no_second_factor_time(
        services: Services, member: Identity) -> None:
    issued = await console_login(services, member.email)
    actor, _ = await actor_for_console_session(services, issued.value)
    assert actor.second_factor_at is None
