"""The pure parts of RDAP: status mapping (RFC 8056) and the checking of query names."""

from __future__ import annotations

import pytest

from regshield.rdds.rdap import (
    RdapError,
    lookup_name,
    nameserver_member,
    search_pattern,
    status_values,
)


def test_epp_statuses_map_to_rdap_values_once_each() -> None:
    assert status_values(["ok"]) == ["active"]
    assert status_values([]) == ["active"]
    assert status_values(["clientTransferProhibited", "clientTransferProhibited"]) == [
        "client transfer prohibited"]
    assert status_values(["pendingDelete", "redemptionPeriod", "pendingDelete"]) == [
        "pending delete", "redemption period"]
    assert status_values(["serverHold", "addPeriod", "notAStatus"]) == [
        "server hold", "add period"]


def test_active_never_stands_beside_a_prohibition_or_a_pending_state() -> None:
    assert status_values(["ok", "clientHold"]) == ["client hold"]
    assert status_values(["ok", "pendingTransfer"]) == ["pending transfer"]
    assert status_values(["ok", "inactive"]) == ["active", "inactive"]


def test_a_lookup_name_is_folded_and_its_form_remembered() -> None:
    plain = lookup_name("Example.TEST.")
    assert (plain.name.ascii, plain.unicode_query) == ("example.test", False)
    idn = lookup_name("BÜCHER.test")
    assert (idn.name.ascii, idn.name.unicode, idn.unicode_query) == (
        "xn--bcher-kva.test", "bücher.test", True)
    assert lookup_name("xn--bcher-kva.test").unicode_query is False


@pytest.mark.parametrize("text", [
    "xn--bcher-kva.tëst", "bücher.xn--p1ai", "a/b.test", "..", "", "x" * 1001,
    "exa mple.test", "-a.test", "a" * 64 + ".test",
])
def test_a_malformed_or_mixed_name_is_a_400(text: str) -> None:
    with pytest.raises(RdapError) as refused:
        lookup_name(text)
    assert refused.value.status == 400 and refused.value.description


def test_a_search_pattern_is_a_name_or_a_prefix() -> None:
    assert search_pattern("Example.test").exact == "example.test"
    assert search_pattern("EXA*").ascii_prefix == "exa"
    assert search_pattern("BÜ*").unicode_prefix == "bü"
    for text in ("a*b*", "%*", "a_b*", "\u202e*"):
        with pytest.raises(RdapError):
            search_pattern(text)


def test_an_idn_nameserver_carries_its_unicode_name() -> None:
    assert nameserver_member("ns1.xn--bcher-kva.test") == {
        "objectClassName": "nameserver", "ldhName": "ns1.xn--bcher-kva.test",
        "unicodeName": "ns1.bücher.test"}
    assert "unicodeName" not in nameserver_member("ns1.example.net")
