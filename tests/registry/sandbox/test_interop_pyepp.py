"""An independent EPP client, PyPI's pyepp, against the sandbox registry over TLS: it logs in as
it would at any registry (with every object service, contact-1.0 included, so the session is a
thick one), creates the registrant contact, and checks, creates, reads and updates a domain."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from registry.sandbox.test_server import PASSWORD_A, Sandbox

pyepp = pytest.importorskip("pyepp")
from pyepp.contact import AddressData, Contact, ContactData, PostalInfoData  # noqa: E402
from pyepp.domain import Domain, DomainData  # noqa: E402
from pyepp.epp import EppCommunicator  # noqa: E402


@pytest.fixture
def trust_sandbox_certificate(sandbox: Sandbox) -> Iterator[None]:
    """pyepp verifies the registry against the default trust store; point it at the sandbox's
    self-signed certificate, as an operator would with SSL_CERT_FILE."""
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(sandbox.server.certificate)
    yield
    if previous is None:
        del os.environ["SSL_CERT_FILE"]
    else:
        os.environ["SSL_CERT_FILE"] = previous


def _pyepp_session(port: int) -> dict[str, Any]:
    """Everything pyepp does, synchronously (it is a blocking client), with its results."""
    epp = EppCommunicator("127.0.0.1", str(port))
    epp.connect()
    login = epp.login("registrar-a", PASSWORD_A)
    contact = Contact(epp)
    registrant = contact.create(ContactData(
        id="holder-1", email="holder@example.net", password="Contact-Auth-2026!x",
        postal_info=PostalInfoData(name="Holder One", type="int", address=AddressData(
            street_1="1 Example Street", city="Zurich", country_code="CH"))))
    registrant_info = contact.info("holder-1")
    domain = Domain(epp)
    before = domain.check(["interop.test", "other.example"])
    created = domain.create(DomainData(
        domain_name="interop.test", period=2, registrant="holder-1",
        host=["ns1.example.net", "ns2.example.net"], password="Interop-Auth-2026!x"))
    after = domain.check(["interop.test"])
    info = domain.info("interop.test")
    updated = domain.update("interop.test", add_statuses=[("clientHold", "interop test")],
                            remove_hosts=["ns2.example.net"])
    info_after = domain.info("interop.test")
    epp.logout()
    return {"login": login, "registrant": registrant, "registrant_info": registrant_info,
            "before": before, "created": created, "after": after, "info": info,
            "updated": updated, "info_after": info_after}


@pytest.mark.usefixtures("trust_sandbox_certificate")
async def test_pyepp_logs_in_creates_a_contact_and_checks_creates_reads_and_updates_a_domain(
        sandbox: Sandbox) -> None:
    results = await asyncio.wait_for(
        asyncio.to_thread(_pyepp_session, sandbox.server.port), timeout=60)

    assert int(results["login"].code) == 1000
    assert int(results["registrant"].code) == 1000
    assert int(results["registrant_info"].code) == 1000
    assert results["before"].result_data == {
        "interop.test": {"avail": True, "reason": None},
        "other.example": {"avail": True, "reason": None},
    }
    assert int(results["created"].code) == 1000
    assert results["after"].result_data["interop.test"]["avail"] is False
    info = results["info"].result_data  # pyepp reads an info answer into its DomainData
    assert info.domain_name == "interop.test"
    assert info.sponsoring_client_id == "registrar-a"
    assert info.registrant == "holder-1"
    assert sorted(info.host) == ["ns1.example.net", "ns2.example.net"]
    assert int(results["updated"].code) == 1000
    after = results["info_after"].result_data
    assert "clientHold" in after.status
    assert after.host == ["ns1.example.net"]
