"""The EPP codec: what the client builds the server parses to the same values and back, in the
element order of the RFC schemas, with passwords masked and malformed documents refused."""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree

from regshield.errors import Conflict, FieldError, NotFound, ValidationFailed
from regshield.registry.codec import (
    CONTACT_NS,
    DOMAIN_NS,
    HOST_NS,
    RESULT_MESSAGES,
    SECDNS_NS,
    CodecError,
    Disclose,
    DomainContact,
    Period,
    Phone,
    PostalInfo,
    RawElement,
    ResultCode,
    Secret,
    Status,
    UnimplementedCommand,
    UnimplementedObjectService,
    UnimplementedOption,
    UnknownCommand,
    new_cl_trid,
    result_for_error,
)
from regshield.registry.commands import (
    Command,
    CommandExtension,
    ContactCreate,
    ContactInfo,
    DomainChanges,
    DomainCheck,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    EppCommand,
    HostCreate,
    HostDelete,
    HostInfo,
    Login,
    Logout,
    Poll,
    RgpRestoreRequest,
    SecDnsCreate,
    SecDnsUpdate,
    build_command,
    build_hello,
    parse_command,
)
from regshield.registry.responses import (
    CheckResult,
    ContactCreateData,
    ContactInfoData,
    DataCollectionPolicy,
    DcpStatement,
    DomainCheckData,
    DomainCreateData,
    DomainInfoData,
    DomainPendingActionData,
    DomainRenewData,
    DomainTransferData,
    EppResponse,
    ExtValue,
    Greeting,
    HostCreateData,
    HostInfoData,
    MessageQueue,
    Result,
    RgpInfo,
    RgpUpdateData,
    SecDnsInfo,
    build_greeting,
    build_response,
    encode_response,
    parse_greeting,
    parse_response,
)
from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml
from regshield.rules.ds import DsRecord
from regshield.rules.names import parse_domain_name

WHEN = datetime(2024, 4, 3, 22, 0, tzinfo=UTC)
DS_A = DsRecord(12345, 13, 2, "49fd46e6c4b45c55d4ac69cbd3cd34ac1afe51de6f29d4cf4ba5c0c2c4c3a1b2")
DS_B = DsRecord(54321, 15, 2, "0123456789abcdef" * 4)
POSTAL_INT = PostalInfo("int", "John Doe", "Dulles", "US", org="Example Inc.",
                        street=("123 Example Dr.", "Suite 100"), sp="VA", pc="20166-6503")
POSTAL_LOC = PostalInfo("loc", "Jürg Müller", "Zürich", "CH", street=("Bahnhofstraße 1",),
                        pc="8001")
DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>"


# --- comparing documents ---------------------------------------------------------------------

def assert_same_xml(actual: bytes, expected: str) -> None:
    """Element by element: qualified names (namespace and local name, whatever the prefix),
    attributes, text and the order of children."""
    assert actual.startswith(DECLARATION), actual[:60]
    parser = etree.XMLParser(remove_blank_text=True)
    _compare(etree.fromstring(actual, parser), etree.fromstring(expected.encode(), parser), "")


def _compare(got: etree._Element, want: etree._Element, path: str) -> None:
    here = f"{path}/{etree.QName(want.tag).localname}"
    assert got.tag == want.tag, f"{here}: found {got.tag}"
    assert sorted(got.attrib.items()) == sorted(want.attrib.items()), here
    assert (got.text or "").strip() == (want.text or "").strip(), here
    assert [child.tag for child in got] == [child.tag for child in want], here
    for got_child, want_child in zip(got, want, strict=True):
        _compare(got_child, want_child, here)


# --- commands: round trips -------------------------------------------------------------------

COMMANDS: list[tuple[Command, tuple[CommandExtension | RawElement, ...]]] = [
    (Login("registrar1", Secret("s3cret-pw")), ()),
    (Login("registrar1", Secret("s3cret-pw"), new_password=Secret("n3w-s3cret"),
           object_uris=(DOMAIN_NS,), extension_uris=()), ()),
    (Logout(), ()),
    (Poll.request(), ()),
    (Poll.acknowledge("12345"), ()),
    (DomainCheck(("example.com", "xn--bcher-kva.example", "example.net")), ()),
    (DomainInfo("example.com"), ()),
    (DomainInfo("example.com", hosts="none", auth_info=Secret("2fooBAR")), ()),
    (DomainCreate("example.com", Secret("2fooBAR")), ()),
    (DomainCreate("example.com", Secret("2fooBAR"), Period(2),
                  ("ns1.example.net", "ns2.example.net"), "jd1234",
                  (DomainContact("admin", "sh8013"), DomainContact("billing", "sh8013"),
                   DomainContact("tech", "mak21"))),
     (SecDnsCreate((DS_A, DS_B), max_sig_life=604800),)),
    (DomainUpdate("example.com",
                  add=DomainChanges(("ns2.example.com",), (DomainContact("tech", "mak21"),),
                                    (Status("clientHold", "Payment overdue."),
                                     Status("clientDeleteProhibited"))),
                  remove=DomainChanges(("ns1.example.com",),
                                       (DomainContact("tech", "sh8013"),),
                                       (Status("clientUpdateProhibited"),)),
                  registrant="sh8013", auth_info=Secret("2BARfoo")),
     (SecDnsUpdate(add=(DS_B,), remove=(DS_A,), urgent=True),)),
    (DomainUpdate("example.com", add=DomainChanges(statuses=(Status("clientHold"),))),
     (SecDnsUpdate(remove_all=True),)),
    (DomainUpdate("example.com", registrant="jd1234"),
     (SecDnsUpdate(add=(DS_A,), max_sig_life=86400),)),
    (DomainUpdate("example.com"), (RgpRestoreRequest(),)),
    (DomainDelete("example.com"), ()),
    (DomainRenew("example.com", date(2025, 4, 3)), ()),
    (DomainRenew("example.com", date(2025, 4, 3), Period(5)), ()),
    (DomainRenew("example.com", date(2025, 4, 3), Period(6, "m")), ()),
    (DomainTransfer("example.com", "request", Period(1), Secret("2fooBAR")), ()),
    (DomainTransfer("example.com", "query"), ()),
    (DomainTransfer("example.com", "approve"), ()),
    (DomainTransfer("example.com", "reject"), ()),
    (DomainTransfer("example.com", "cancel"), ()),
    (HostCreate("ns1.example.com"), ()),
    (HostCreate("ns1.example.com", (ipaddress.ip_address("192.0.2.2"),
                                    ipaddress.ip_address("2001:db8::8:800:200c:417a"))), ()),
    (HostInfo("ns1.example.com"), ()),
    (HostDelete("ns1.example.com"), ()),
    (ContactCreate("sh8013", (POSTAL_INT,), "jdoe@example.com", Secret("2fooBAR")), ()),
    (ContactCreate("sh8013", (POSTAL_LOC, POSTAL_INT), "jdoe@example.com", Secret("2fooBAR"),
                   voice=Phone("+1.7035555555", "1234"), fax=Phone("+1.7035555556"),
                   disclose=Disclose(False, ("name:loc", "voice", "email"))), ()),
    (ContactInfo("sh8013"), ()),
    (ContactInfo("sh8013", Secret("2fooBAR")), ()),
    (DomainInfo("example.com"), (RawElement.from_xml(
        b'<ex:hint xmlns:ex="urn:example:private-1.0" level="2">hello</ex:hint>'),)),
]


@pytest.mark.parametrize(("body", "extensions"), COMMANDS,
                         ids=[f"{type(body).__name__}-{i}" for i, (body, _) in
                              enumerate(COMMANDS)])
def test_a_built_command_parses_back_to_the_same_values(
        body: Command, extensions: tuple[CommandExtension | RawElement, ...]) -> None:
    document = build_command(body, extensions=extensions, cl_trid="ABC-12345")
    assert document.startswith(DECLARATION)
    parsed = parse_command(document)
    assert parsed == EppCommand(body, extensions, "ABC-12345")
    assert parsed.command == body.verb


def test_the_server_sees_the_verb_and_the_object_type() -> None:
    parsed = parse_command(build_command(DomainTransfer("example.com", "query")))
    assert (parsed.command, parsed.object_type) == ("transfer", "domain")
    parsed = parse_command(build_command(HostDelete("ns1.example.com")))
    assert (parsed.command, parsed.object_type) == ("delete", "host")
    parsed = parse_command(build_command(Logout()))
    assert (parsed.command, parsed.object_type) == ("logout", None)


def test_the_server_finds_an_extension_by_its_type() -> None:
    parsed = parse_command(build_command(DomainUpdate("example.com"),
                                         extensions=[RgpRestoreRequest()]))
    assert parsed.extension(RgpRestoreRequest) == RgpRestoreRequest()
    assert parsed.extension(SecDnsUpdate) is None


def test_hello_is_parsed_as_hello_without_a_transaction_id() -> None:
    parsed = parse_command(build_hello())
    assert (parsed.command, parsed.object_type, parsed.cl_trid) == ("hello", None, None)
    assert_same_xml(build_hello(), f'<epp xmlns="{EPP_NS}"><hello/></epp>')


def test_every_command_carries_a_fresh_client_transaction_id_unless_one_is_given() -> None:
    first = parse_command(build_command(Logout())).cl_trid
    second = parse_command(build_command(Logout())).cl_trid
    assert first is not None and second is not None and first != second
    assert 3 <= len(first) <= 64
    assert parse_command(build_command(Logout(), cl_trid="ABC-12345")).cl_trid == "ABC-12345"
    generated = new_cl_trid("regshield")
    assert generated.startswith("regshield-") and len(generated) <= 64


@pytest.mark.parametrize("cl_trid", ["ab", "x" * 65, " ABC-12345", "ABC  12345"])
def test_a_client_transaction_id_outside_the_schema_is_refused(cl_trid: str) -> None:
    with pytest.raises(CodecError, match="epp:clTRID"):
        build_command(Logout(), cl_trid=cl_trid)


# --- commands: exact shape -------------------------------------------------------------------

def test_login_is_written_in_schema_order() -> None:
    document = build_command(Login("ClientX", Secret("foo-BAR2"), new_password=Secret("bar-FOO2")),
                             cl_trid="ABC-12345")
    assert_same_xml(document, """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <command>
            <login>
              <clID>ClientX</clID>
              <pw>foo-BAR2</pw>
              <newPW>bar-FOO2</newPW>
              <options><version>1.0</version><lang>en</lang></options>
              <svcs>
                <objURI>urn:ietf:params:xml:ns:domain-1.0</objURI>
                <objURI>urn:ietf:params:xml:ns:host-1.0</objURI>
                <objURI>urn:ietf:params:xml:ns:contact-1.0</objURI>
                <svcExtension>
                  <extURI>urn:ietf:params:xml:ns:secDNS-1.1</extURI>
                  <extURI>urn:ietf:params:xml:ns:rgp-1.0</extURI>
                </svcExtension>
              </svcs>
            </login>
            <clTRID>ABC-12345</clTRID>
          </command>
        </epp>""")


def test_domain_create_with_ds_data_is_written_in_schema_order_with_an_a_label() -> None:
    name = parse_domain_name("Bücher.example")
    document = build_command(
        DomainCreate(name.ascii, Secret("2fooBAR"), Period(2),
                     ("ns1.example.net", "ns2.example.net"), "jd1234",
                     (DomainContact("admin", "sh8013"), DomainContact("tech", "sh8013"))),
        extensions=[SecDnsCreate((DS_A,))], cl_trid="ABC-12345")
    assert_same_xml(document, f"""
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <command>
            <create>
              <d:create xmlns:d="urn:ietf:params:xml:ns:domain-1.0">
                <d:name>xn--bcher-kva.example</d:name>
                <d:period unit="y">2</d:period>
                <d:ns>
                  <d:hostObj>ns1.example.net</d:hostObj>
                  <d:hostObj>ns2.example.net</d:hostObj>
                </d:ns>
                <d:registrant>jd1234</d:registrant>
                <d:contact type="admin">sh8013</d:contact>
                <d:contact type="tech">sh8013</d:contact>
                <d:authInfo><d:pw>2fooBAR</d:pw></d:authInfo>
              </d:create>
            </create>
            <extension>
              <s:create xmlns:s="urn:ietf:params:xml:ns:secDNS-1.1">
                <s:dsData>
                  <s:keyTag>12345</s:keyTag>
                  <s:alg>13</s:alg>
                  <s:digestType>2</s:digestType>
                  <s:digest>{DS_A.digest}</s:digest>
                </s:dsData>
              </s:create>
            </extension>
            <clTRID>ABC-12345</clTRID>
          </command>
        </epp>""")
    assert b"xn--bcher-kva.example" in document and "ü".encode() not in document


def test_domain_update_puts_add_rem_chg_in_order_and_secdns_removals_before_additions() -> None:
    document = build_command(
        DomainUpdate("example.com",
                     add=DomainChanges(("ns2.example.com",), (DomainContact("tech", "mak21"),),
                                       (Status("clientHold", "Payment overdue."),)),
                     remove=DomainChanges(("ns1.example.com",),
                                          statuses=(Status("clientUpdateProhibited"),)),
                     registrant="sh8013", auth_info=Secret("2BARfoo")),
        extensions=[SecDnsUpdate(add=(DS_B,), remove_all=True)], cl_trid="ABC-12345")
    assert_same_xml(document, f"""
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <command>
            <update>
              <domain:update xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
                <domain:name>example.com</domain:name>
                <domain:add>
                  <domain:ns><domain:hostObj>ns2.example.com</domain:hostObj></domain:ns>
                  <domain:contact type="tech">mak21</domain:contact>
                  <domain:status s="clientHold">Payment overdue.</domain:status>
                </domain:add>
                <domain:rem>
                  <domain:ns><domain:hostObj>ns1.example.com</domain:hostObj></domain:ns>
                  <domain:status s="clientUpdateProhibited"/>
                </domain:rem>
                <domain:chg>
                  <domain:registrant>sh8013</domain:registrant>
                  <domain:authInfo><domain:pw>2BARfoo</domain:pw></domain:authInfo>
                </domain:chg>
              </domain:update>
            </update>
            <extension>
              <secDNS:update xmlns:secDNS="urn:ietf:params:xml:ns:secDNS-1.1">
                <secDNS:rem><secDNS:all>true</secDNS:all></secDNS:rem>
                <secDNS:add>
                  <secDNS:dsData>
                    <secDNS:keyTag>54321</secDNS:keyTag>
                    <secDNS:alg>15</secDNS:alg>
                    <secDNS:digestType>2</secDNS:digestType>
                    <secDNS:digest>{DS_B.digest}</secDNS:digest>
                  </secDNS:dsData>
                </secDNS:add>
              </secDNS:update>
            </extension>
            <clTRID>ABC-12345</clTRID>
          </command>
        </epp>""")


def test_restore_request_is_an_update_with_an_empty_chg_and_the_rgp_extension() -> None:
    document = build_command(DomainUpdate("example.com"), extensions=[RgpRestoreRequest()],
                             cl_trid="ABC-12345")
    assert_same_xml(document, """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <command>
            <update>
              <domain:update xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
                <domain:name>example.com</domain:name>
                <domain:chg/>
              </domain:update>
            </update>
            <extension>
              <rgp:update xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0">
                <rgp:restore op="request"/>
              </rgp:update>
            </extension>
            <clTRID>ABC-12345</clTRID>
          </command>
        </epp>""")


def test_transfer_puts_the_operation_on_the_transfer_element() -> None:
    document = build_command(DomainTransfer("example.com", "request", Period(1),
                                            Secret("2fooBAR")), cl_trid="ABC-12345")
    assert_same_xml(document, """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <command>
            <transfer op="request">
              <domain:transfer xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
                <domain:name>example.com</domain:name>
                <domain:period unit="y">1</domain:period>
                <domain:authInfo><domain:pw>2fooBAR</domain:pw></domain:authInfo>
              </domain:transfer>
            </transfer>
            <clTRID>ABC-12345</clTRID>
          </command>
        </epp>""")


def test_renew_and_poll_ack_and_host_create_are_written_as_the_rfcs_show() -> None:
    assert_same_xml(build_command(DomainRenew("example.com", date(2000, 4, 3), Period(5)),
                                  cl_trid="ABC-12345"), """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><command><renew>
          <domain:renew xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
            <domain:name>example.com</domain:name>
            <domain:curExpDate>2000-04-03</domain:curExpDate>
            <domain:period unit="y">5</domain:period>
          </domain:renew>
        </renew><clTRID>ABC-12345</clTRID></command></epp>""")
    assert_same_xml(build_command(Poll.acknowledge("12345"), cl_trid="ABC-12346"), """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><command>
          <poll op="ack" msgID="12345"/><clTRID>ABC-12346</clTRID>
        </command></epp>""")
    assert_same_xml(build_command(HostCreate("ns1.example.com", (
        ipaddress.ip_address("192.0.2.2"), ipaddress.ip_address("2001:DB8::1"))),
        cl_trid="ABC-12347"), """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><command><create>
          <host:create xmlns:host="urn:ietf:params:xml:ns:host-1.0">
            <host:name>ns1.example.com</host:name>
            <host:addr ip="v4">192.0.2.2</host:addr>
            <host:addr ip="v6">2001:db8::1</host:addr>
          </host:create>
        </create><clTRID>ABC-12347</clTRID></command></epp>""")


def test_contact_create_is_written_in_schema_order_in_utf8() -> None:
    document = build_command(
        ContactCreate("sh8013", (POSTAL_LOC,), "jdoe@example.com", Secret("2fooBAR"),
                      voice=Phone("+41.445555555", "12"),
                      disclose=Disclose(False, ("email", "voice"))),
        cl_trid="ABC-12345")
    assert_same_xml(document, """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><command><create>
          <contact:create xmlns:contact="urn:ietf:params:xml:ns:contact-1.0">
            <contact:id>sh8013</contact:id>
            <contact:postalInfo type="loc">
              <contact:name>Jürg Müller</contact:name>
              <contact:addr>
                <contact:street>Bahnhofstraße 1</contact:street>
                <contact:city>Zürich</contact:city>
                <contact:pc>8001</contact:pc>
                <contact:cc>CH</contact:cc>
              </contact:addr>
            </contact:postalInfo>
            <contact:voice x="12">+41.445555555</contact:voice>
            <contact:email>jdoe@example.com</contact:email>
            <contact:authInfo><contact:pw>2fooBAR</contact:pw></contact:authInfo>
            <contact:disclose flag="0"><contact:voice/><contact:email/></contact:disclose>
          </contact:create>
        </create><clTRID>ABC-12345</clTRID></command></epp>""")
    assert "Zürich".encode() in document


# --- commands: what the builders refuse ------------------------------------------------------

def test_a_u_label_is_refused_so_that_only_a_labels_go_on_the_wire() -> None:
    with pytest.raises(CodecError, match=r"domain:name: .* not in A-label form"):
        DomainCreate("bücher.example", Secret("2fooBAR"))
    with pytest.raises(CodecError, match="domain:hostObj"):
        DomainCreate("example.com", Secret("2fooBAR"), nameservers=("ns1.bücher.example",))
    with pytest.raises(CodecError, match="host:name"):
        HostInfo("ns1.bücher.example")


def test_a_server_refuses_a_u_label_sent_by_a_client() -> None:
    document = build_command(DomainInfo("xn--bcher-kva.example")).replace(
        b"xn--bcher-kva", "bücher".encode())
    with pytest.raises(CodecError, match="A-label"):
        parse_command(document)


@pytest.mark.parametrize(("make", "element"), [
    (lambda: Login("registrar1", Secret("short")), "epp:pw"),
    (lambda: Login("registrar1", Secret("x" * 17)), "epp:pw"),
    (lambda: Login("r1", Secret("s3cret-pw")), "epp:clID"),
    (lambda: Login("registrar1", Secret("s3cret-pw"), object_uris=()), "epp:svcs"),
    (lambda: Login("registrar1", Secret("s3cret-pw"), version="2.0"), "epp:version"),
    (lambda: Period(0), "domain:period"),
    (lambda: Period(100), "domain:period"),
    (lambda: DomainCheck(()), "domain:check"),
    (lambda: DomainContact("owner", "sh8013"), "domain:contact"),  # type: ignore[arg-type]
    (lambda: DomainTransfer("example.com", "steal"), "epp:transfer"),  # type: ignore[arg-type]
    (lambda: DomainChanges(statuses=(Status("deleted"),)), "domain:status"),
    (lambda: Poll("ack"), "epp:poll msgID"),
    (lambda: PostalInfo("int", "J", "C", "US", street=("1", "2", "3", "4")), "contact:street"),
    (lambda: PostalInfo("int", "Jürg", "Zürich", "CH"), 'type="int"'),
    (lambda: PostalInfo("loc", "J", "C", "USA"), "contact:cc"),
    (lambda: ContactCreate("sh8013", (POSTAL_INT, POSTAL_INT), "a@example.com",
                           Secret("2fooBAR")), "contact:postalInfo"),
    (lambda: Phone("+1 703 555 5555"), "contact:voice"),
    (lambda: SecDnsUpdate(remove=(DS_A,), remove_all=True), "secDNS:rem"),
    (lambda: SecDnsUpdate(), "secDNS:update"),
    (lambda: SecDnsCreate((DsRecord(70000, 13, 2, "ab"),)), "secDNS:keyTag"),
    (lambda: SecDnsCreate((DsRecord(1, 13, 2, "xyz"),)), "secDNS:digest"),
    (lambda: DomainRenew("example.com", WHEN), "domain:curExpDate"),
    (lambda: DomainInfo("example.com", auth_info="2fooBAR"),  # type: ignore[arg-type]
     "domain:authInfo"),
])
def test_a_value_the_schema_refuses_is_refused_when_built(make: Any, element: str) -> None:
    with pytest.raises(CodecError, match=element):
        make()


def test_an_extension_is_refused_on_a_command_it_does_not_extend() -> None:
    with pytest.raises(CodecError, match="secDNS:create: does not extend domain:update"):
        build_command(DomainUpdate("example.com"), extensions=[SecDnsCreate((DS_A,))])


# --- secrets ---------------------------------------------------------------------------------

def test_passwords_never_appear_in_the_repr_of_a_parsed_login() -> None:
    parsed = parse_command(build_command(Login("registrar1", Secret("Pa55-word"),
                                               new_password=Secret("N3w-Pa55"))))
    assert isinstance(parsed.body, Login)
    assert parsed.body.password.reveal() == "Pa55-word"
    assert parsed.body.new_password == Secret("N3w-Pa55")
    for text in (repr(parsed), str(parsed), repr(parsed.body), f"{parsed.body.password}"):
        assert "Pa55-word" not in text and "N3w-Pa55" not in text
    assert "Secret('********')" in repr(parsed)


def test_authorization_codes_never_appear_in_the_repr_of_commands_or_responses() -> None:
    command = parse_command(build_command(DomainTransfer("example.com", "request",
                                                         auth_info=Secret("Tr4nsfer-c0de"))))
    assert "Tr4nsfer-c0de" not in repr(command)
    response = parse_response(build_response(
        1000, None, "ABC-12345", "54322-XYZ",
        DomainInfoData("example.com", "EXAMPLE1-REP", "ClientX", (Status("ok"),),
                       auth_info=Secret("Tr4nsfer-c0de"))))
    info = response.item(DomainInfoData)
    assert info is not None and info.auth_info == Secret("Tr4nsfer-c0de")
    assert "Tr4nsfer-c0de" not in repr(response)


def test_a_refused_password_is_not_repeated_in_the_error() -> None:
    with pytest.raises(CodecError) as refused:
        Login("registrar1", Secret("a-far-too-long-password"))
    assert "a-far-too-long-password" not in str(refused.value)


def test_an_unknown_extension_kept_raw_does_not_show_its_content_in_repr() -> None:
    raw = RawElement.from_xml(b'<ex:secret xmlns:ex="urn:example:x">hunter22</ex:secret>')
    assert "hunter22" not in repr(raw)
    assert raw.to_element().text == "hunter22"


# --- responses: round trips ------------------------------------------------------------------

NOT_FOUND_VALUE = RawElement.from_xml(
    b'<domain:name xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">gone.example</domain:name>')

RESPONSES: list[EppResponse] = [
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345"),
    EppResponse((Result(1500),), "54322-XYZ"),
    EppResponse((Result(2303, values=(NOT_FOUND_VALUE,)),), "54322-XYZ", "ABC-12345"),
    EppResponse((Result(2004, "Parameter value range error", ext_values=(
        ExtValue(NOT_FOUND_VALUE, "Le nom est trop long", "fr"),)),
        Result(2005, "Parameter value syntax error")), "54322-XYZ", "ABC-12345"),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345", data=(DomainCheckData((
        CheckResult("example.com", True), CheckResult("example.net", False, "In use"))),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345", data=(DomainInfoData(
        "xn--bcher-kva.example", "EXAMPLE1-REP", "ClientX",
        (Status("clientHold", "Payment overdue."), Status("clientTransferProhibited")),
        "jd1234", (DomainContact("admin", "sh8013"), DomainContact("tech", "sh8013")),
        ("ns1.example.com", "ns1.example.net"), ("ns1.xn--bcher-kva.example",), "ClientY",
        WHEN, "ClientX", WHEN + timedelta(days=1), WHEN + timedelta(days=365),
        WHEN + timedelta(days=30), Secret("2fooBAR")),),
        extensions=(SecDnsInfo((DS_A, DS_B), 604800),
                    RgpInfo((Status("addPeriod"), Status("renewPeriod", "two years"))))),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345", data=(
        DomainInfoData("example.com", "EXAMPLE1-REP", "ClientX"),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                data=(DomainCreateData("example.com", WHEN, WHEN + timedelta(days=730)),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                data=(DomainRenewData("example.com", WHEN + timedelta(days=1826)),)),
    EppResponse((Result(1001),), "54322-XYZ", "ABC-12345", data=(DomainTransferData(
        "example.com", "pending", "ClientX", WHEN, "ClientY", WHEN + timedelta(days=5),
        WHEN + timedelta(days=365)),)),
    EppResponse((Result(1301),), "54322-XYZ", "ABC-12345",
                message_queue=MessageQueue(5, "12345", WHEN, "Transfer approved."),
                data=(DomainPendingActionData("example.com", True, "54321-XYZ", WHEN,
                                              "ABC-12340"),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                message_queue=MessageQueue(4, "12346")),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                data=(HostCreateData("ns1.example.com", WHEN),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345", data=(HostInfoData(
        "ns1.example.com", "NS1_EXAMPLE1-REP", (Status("linked"),
                                                Status("clientUpdateProhibited")),
        "ClientY", "ClientX", WHEN, (ipaddress.ip_address("192.0.2.2"),
                                     ipaddress.ip_address("2001:db8::1")),
        "ClientX", WHEN, WHEN),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                data=(ContactCreateData("sh8013", WHEN),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345", data=(ContactInfoData(
        "sh8013", "SH8013-REP", (Status("linked"), Status("clientDeleteProhibited")),
        (POSTAL_INT, POSTAL_LOC), "jdoe@example.com", "ClientY", "ClientX", WHEN,
        Phone("+1.7035555555", "1234"), Phone("+1.7035555556"), "ClientX", WHEN, WHEN,
        Secret("2fooBAR"), Disclose(False, ("voice", "email"))),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                extensions=(RgpUpdateData((Status("pendingRestore"),)),)),
    EppResponse((Result(1000),), "54322-XYZ", "ABC-12345",
                data=(RawElement.from_xml(b'<ex:chkData xmlns:ex="urn:example:x"><ex:a/>'
                                          b'</ex:chkData>'),),
                extensions=(RawElement.from_xml(b'<ex:info xmlns:ex="urn:example:x" n="1">'
                                                b'text</ex:info>'),)),
]


@pytest.mark.parametrize("response", RESPONSES,
                         ids=[f"{r.code}-{i}" for i, r in enumerate(RESPONSES)])
def test_a_response_built_by_the_server_parses_back_to_the_same_values(
        response: EppResponse) -> None:
    document = encode_response(response)
    assert document.startswith(DECLARATION)
    assert parse_response(document) == response


def test_build_response_uses_the_standard_message_and_keeps_the_transaction_ids() -> None:
    response = parse_response(build_response(
        2303, None, "ABC-12345", "54322-XYZ", values=[NOT_FOUND_VALUE]))
    assert response.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert response.message == "Object does not exist"
    assert not response.succeeded
    assert (response.cl_trid, response.sv_trid) == ("ABC-12345", "54322-XYZ")
    assert response.results[0].values[0].to_element().text == "gone.example"


def test_a_domain_info_response_is_written_in_schema_order() -> None:
    document = build_response(
        1000, None, "ABC-12345", "54322-XYZ",
        DomainInfoData("example.com", "EXAMPLE1-REP", "ClientX", (Status("ok"),), "jd1234",
                       (DomainContact("admin", "sh8013"),), ("ns1.example.com",),
                       ("ns1.example.com",), "ClientY", WHEN, None, None,
                       WHEN + timedelta(days=365), None, Secret("2fooBAR")),
        extension=[SecDnsInfo((DS_A,)), RgpInfo((Status("addPeriod"),))])
    assert_same_xml(document, f"""
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <response>
            <result code="1000"><msg>Command completed successfully</msg></result>
            <resData>
              <domain:infData xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
                <domain:name>example.com</domain:name>
                <domain:roid>EXAMPLE1-REP</domain:roid>
                <domain:status s="ok"/>
                <domain:registrant>jd1234</domain:registrant>
                <domain:contact type="admin">sh8013</domain:contact>
                <domain:ns><domain:hostObj>ns1.example.com</domain:hostObj></domain:ns>
                <domain:host>ns1.example.com</domain:host>
                <domain:clID>ClientX</domain:clID>
                <domain:crID>ClientY</domain:crID>
                <domain:crDate>2024-04-03T22:00:00Z</domain:crDate>
                <domain:exDate>2025-04-03T22:00:00Z</domain:exDate>
                <domain:authInfo><domain:pw>2fooBAR</domain:pw></domain:authInfo>
              </domain:infData>
            </resData>
            <extension>
              <secDNS:infData xmlns:secDNS="urn:ietf:params:xml:ns:secDNS-1.1">
                <secDNS:dsData>
                  <secDNS:keyTag>12345</secDNS:keyTag>
                  <secDNS:alg>13</secDNS:alg>
                  <secDNS:digestType>2</secDNS:digestType>
                  <secDNS:digest>{DS_A.digest}</secDNS:digest>
                </secDNS:dsData>
              </secDNS:infData>
              <rgp:infData xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0">
                <rgp:rgpStatus s="addPeriod"/>
              </rgp:infData>
            </extension>
            <trID><clTRID>ABC-12345</clTRID><svTRID>54322-XYZ</svTRID></trID>
          </response>
        </epp>""")


def test_a_poll_response_puts_the_message_queue_before_the_response_data() -> None:
    document = build_response(
        1301, None, "ABC-12345", "54322-XYZ",
        DomainTransferData("example.com", "pending", "ClientX", WHEN, "ClientY",
                           WHEN + timedelta(days=5)),
        MessageQueue(5, "12345", WHEN, "Transfer requested."))
    assert_same_xml(document, """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <response>
            <result code="1301">
              <msg>Command completed successfully; ack to dequeue</msg>
            </result>
            <msgQ count="5" id="12345">
              <qDate>2024-04-03T22:00:00Z</qDate>
              <msg>Transfer requested.</msg>
            </msgQ>
            <resData>
              <domain:trnData xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
                <domain:name>example.com</domain:name>
                <domain:trStatus>pending</domain:trStatus>
                <domain:reID>ClientX</domain:reID>
                <domain:reDate>2024-04-03T22:00:00Z</domain:reDate>
                <domain:acID>ClientY</domain:acID>
                <domain:acDate>2024-04-08T22:00:00Z</domain:acDate>
              </domain:trnData>
            </resData>
            <trID><clTRID>ABC-12345</clTRID><svTRID>54322-XYZ</svTRID></trID>
          </response>
        </epp>""")


def test_secdns_info_belongs_in_the_extension_and_domain_info_in_res_data() -> None:
    with pytest.raises(CodecError, match="secDNS:infData belongs in epp:extension"):
        build_response(1000, None, "ABC-12345", "54322-XYZ", SecDnsInfo((DS_A,)))
    with pytest.raises(CodecError, match="domain:creData belongs in epp:resData"):
        build_response(1000, None, "ABC-12345", "54322-XYZ",
                       extension=DomainCreateData("example.com", WHEN))


# --- responses as a registry writes them -----------------------------------------------------

REGISTRY_INFO = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
  <response>
    <result code="1000">
      <msg lang="en">Command completed successfully</msg>
    </result>
    <resData>
      <d:infData xmlns:d="urn:ietf:params:xml:ns:domain-1.0">
        <d:name>xn--bcher-kva.example</d:name>
        <d:roid>EXAMPLE1-REP</d:roid>
        <d:status s="clientTransferProhibited" lang="en">locked by the registrant</d:status>
        <d:status s="serverDeleteProhibited"/>
        <d:registrant>jd1234</d:registrant>
        <d:contact type="admin">sh8013</d:contact>
        <d:contact type="tech">sh8013</d:contact>
        <d:ns>
          <d:hostObj>ns1.example.com</d:hostObj>
          <d:hostObj>ns2.example.com</d:hostObj>
        </d:ns>
        <d:clID>ClientX</d:clID>
        <d:crID>ClientY</d:crID>
        <d:crDate>1999-04-03T22:00:00.0Z</d:crDate>
        <d:upID>ClientX</d:upID>
        <d:upDate>1999-12-03T09:00:00.123+01:00</d:upDate>
        <d:exDate>2005-04-03T22:00:00.0Z</d:exDate>
        <d:trDate>2000-04-08T09:00:00-05:00</d:trDate>
        <d:authInfo>
          <d:pw>2fooBAR</d:pw>
        </d:authInfo>
      </d:infData>
    </resData>
    <extension>
      <rgp:infData xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0">
        <rgp:rgpStatus s="redemptionPeriod"/>
      </rgp:infData>
      <fee:infData xmlns:fee="urn:ietf:params:xml:ns:epp:fee-1.0">
        <fee:currency>USD</fee:currency>
      </fee:infData>
    </extension>
    <trID>
      <clTRID>ABC-12345</clTRID>
      <svTRID>54322-XYZ</svTRID>
    </trID>
  </response>
</epp>
"""


def test_a_registry_info_response_gives_typed_values_and_aware_utc_datetimes() -> None:
    response = parse_response(REGISTRY_INFO.encode())
    info = response.item(DomainInfoData)
    assert info is not None
    assert info.name == "xn--bcher-kva.example"
    assert parse_domain_name(info.name).unicode == "bücher.example"
    assert info.statuses == (Status("clientTransferProhibited", "locked by the registrant"),
                             Status("serverDeleteProhibited"))
    assert info.contacts == (DomainContact("admin", "sh8013"), DomainContact("tech", "sh8013"))
    assert info.nameservers == ("ns1.example.com", "ns2.example.com")
    assert (info.sponsoring_client, info.created_by, info.updated_by) == \
        ("ClientX", "ClientY", "ClientX")
    assert info.created == datetime(1999, 4, 3, 22, 0, tzinfo=UTC)
    assert info.updated == datetime(1999, 12, 3, 8, 0, 0, 123000, tzinfo=UTC)
    assert info.transferred == datetime(2000, 4, 8, 14, 0, tzinfo=UTC)
    for moment in (info.created, info.updated, info.expires, info.transferred):
        assert moment is not None and moment.utcoffset() == timedelta(0)
    assert info.auth_info == Secret("2fooBAR")
    assert response.item(RgpInfo) == RgpInfo((Status("redemptionPeriod"),))


def test_an_unknown_response_extension_is_kept_whole_not_dropped() -> None:
    response = parse_response(REGISTRY_INFO.encode())
    raw = [item for item in response.extensions if isinstance(item, RawElement)]
    assert [item.tag for item in raw] == ["{urn:ietf:params:xml:ns:epp:fee-1.0}infData"]
    assert raw[0].namespace == "urn:ietf:params:xml:ns:epp:fee-1.0"
    currency = raw[0].to_element()[0]
    assert (etree.QName(currency.tag).localname, currency.text) == ("currency", "USD")


def test_a_poll_message_with_mixed_content_is_read_as_its_text() -> None:
    document = b"""<?xml version="1.0" encoding="UTF-8"?>
    <epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><response>
      <result code="1301"><msg>Command completed successfully; ack to dequeue</msg></result>
      <msgQ count="1" id="abc-7"><qDate>2024-04-03T22:00:00Z</qDate>
        <msg>Transfer of <b xmlns="urn:example:x">example.com</b> approved</msg></msgQ>
      <trID><svTRID>54322-XYZ</svTRID></trID>
    </response></epp>"""
    response = parse_response(document)
    assert response.code == ResultCode.COMPLETED_ACK_TO_DEQUEUE
    assert response.cl_trid is None
    assert response.message_queue == MessageQueue(1, "abc-7", WHEN,
                                                  "Transfer of example.com approved")


# --- greetings -------------------------------------------------------------------------------

@pytest.mark.parametrize("greeting", [
    Greeting("Example EPP server epp.example.com", WHEN),
    Greeting("sandbox", WHEN.astimezone(timezone(timedelta(hours=9))), object_uris=(DOMAIN_NS,),
             extension_uris=(), languages=("en", "fr"),
             dcp=DataCollectionPolicy("personalAndOther", (
                 DcpStatement(("prov", "admin"), ("public", "ours"), "stated"),
                 DcpStatement(("other",), ("same", "unrelated", "other"), "legal")),
                 expiry=WHEN + timedelta(days=365))),
    Greeting("sandbox", WHEN, dcp=DataCollectionPolicy("none", expiry="P1Y")),
])
def test_a_greeting_round_trips(greeting: Greeting) -> None:
    assert parse_greeting(build_greeting(greeting)) == greeting


def test_a_greeting_is_written_in_schema_order() -> None:
    document = build_greeting(Greeting("Example EPP server", WHEN,
                                       object_uris=(DOMAIN_NS, HOST_NS, CONTACT_NS),
                                       extension_uris=(SECDNS_NS,)))
    assert_same_xml(document, """
        <epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
          <greeting>
            <svID>Example EPP server</svID>
            <svDate>2024-04-03T22:00:00Z</svDate>
            <svcMenu>
              <version>1.0</version>
              <lang>en</lang>
              <objURI>urn:ietf:params:xml:ns:domain-1.0</objURI>
              <objURI>urn:ietf:params:xml:ns:host-1.0</objURI>
              <objURI>urn:ietf:params:xml:ns:contact-1.0</objURI>
              <svcExtension><extURI>urn:ietf:params:xml:ns:secDNS-1.1</extURI></svcExtension>
            </svcMenu>
            <dcp>
              <access><all/></access>
              <statement>
                <purpose><admin/><prov/></purpose>
                <recipient><ours/><public/></recipient>
                <retention><stated/></retention>
              </statement>
            </dcp>
          </greeting>
        </epp>""")


def test_the_client_reads_the_registry_greeting() -> None:
    greeting = parse_greeting(b"""<?xml version="1.0" encoding="UTF-8"?>
    <epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><greeting>
      <svID>Example EPP server epp.example.com</svID>
      <svDate>2000-06-08T22:00:00.0Z</svDate>
      <svcMenu><version>1.0</version><lang>en</lang><lang>fr</lang>
        <objURI>urn:ietf:params:xml:ns:obj1</objURI>
        <svcExtension><extURI>http://custom/obj1ext-1.0</extURI></svcExtension>
      </svcMenu>
      <dcp><access><all/></access>
        <statement><purpose><admin/><prov/></purpose>
          <recipient><ours><recDesc>Registry</recDesc></ours><public/></recipient>
          <retention><stated/></retention></statement></dcp>
    </greeting></epp>""")
    assert greeting.server_date == datetime(2000, 6, 8, 22, 0, tzinfo=UTC)
    assert greeting.languages == ("en", "fr")
    assert greeting.object_uris == ("urn:ietf:params:xml:ns:obj1",)
    assert greeting.extension_uris == ("http://custom/obj1ext-1.0",)
    assert greeting.dcp.statements[0].recipients == ("ours", "public")


# --- dates and times -------------------------------------------------------------------------

def test_a_datetime_without_a_time_zone_is_refused_not_guessed() -> None:
    document = build_response(1000, None, "ABC-12345", "54322-XYZ",
                              DomainCreateData("example.com", WHEN)).replace(
        b"2024-04-03T22:00:00Z", b"2024-04-03T22:00:00")
    with pytest.raises(CodecError, match=r"domain:crDate: .* has no time zone"):
        parse_response(document)


def test_a_naive_datetime_is_refused_when_built() -> None:
    with pytest.raises(CodecError, match="domain:crDate: needs a timezone-aware datetime"):
        DomainCreateData("example.com", datetime(2024, 4, 3, 22, 0))


def test_a_naive_optional_datetime_is_refused_naming_its_element() -> None:
    with pytest.raises(CodecError, match="domain:exDate: needs a timezone-aware datetime"):
        DomainInfoData("example.com", "EXAMPLE1-REP", "ClientX",
                       expires=datetime(2025, 4, 3, 22, 0))


def test_datetimes_are_written_in_utc_and_keep_their_microseconds() -> None:
    moment = datetime(2024, 4, 4, 0, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    document = build_response(1000, None, "ABC-12345", "54322-XYZ",
                              DomainCreateData("example.com", moment))
    assert b"<domain:crDate>2024-04-03T22:00:00.250000Z</domain:crDate>" in document
    created = parse_response(document).item(DomainCreateData)
    assert created is not None and created.created == moment
    assert created.created.tzinfo == UTC


# --- malformed and unexpected documents ------------------------------------------------------

def _command(inner: str, extension: str = "") -> bytes:
    extension = f"<extension>{extension}</extension>" if extension else ""
    return (f'<epp xmlns="{EPP_NS}"><command>{inner}{extension}<clTRID>ABC-12345</clTRID>'
            f"</command></epp>").encode()


def _domain(verb: str, body: str, attributes: str = "") -> str:
    return (f'<{verb}{attributes}><domain:{verb} xmlns:domain="{DOMAIN_NS}">{body}'
            f"</domain:{verb}></{verb}>")


AUTH = "<domain:authInfo><domain:pw>2fooBAR</domain:pw></domain:authInfo>"


@pytest.mark.parametrize(("document", "error", "message"), [
    (b"not xml at all", CodecError, "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x "y">]><epp/>', CodecError,
     "document type declaration"),
    (b"<epp><hello/></epp>", CodecError, "root element must be epp:epp"),
    (f'<epp xmlns="{EPP_NS}"/>'.encode(), CodecError, "epp:epp: must hold exactly one"),
    (f'<epp xmlns="{EPP_NS}"><hello/><hello/></epp>'.encode(), CodecError, "exactly one"),
    (f'<epp xmlns="{EPP_NS}"><greeting/></epp>'.encode(), CodecError,
     "expected epp:hello or epp:command"),
    (_command("<frobnicate/>"), UnknownCommand, "epp:frobnicate is not an EPP command"),
    (_command(_domain("create", f"<domain:registrant>jd1234</domain:registrant>"
                                f"<domain:name>example.com</domain:name>{AUTH}")),
     CodecError, "domain:create: domain:name is missing, found domain:registrant"),
    (_command(_domain("create", f"<domain:name>example.com</domain:name>{AUTH}"
                                "<domain:registrant>jd1234</domain:registrant>")),
     CodecError, "domain:create: unexpected element domain:registrant"),
    (_command(_domain("create", "<domain:name>example.com</domain:name>")),
     CodecError, "domain:authInfo is missing"),
    (_command(_domain("create", '<domain:name>example.com</domain:name>'
                                f'<domain:period unit="y">100</domain:period>{AUTH}')),
     CodecError, "domain:period: must be 1 to 99"),
    (_command(_domain("create", '<domain:name>example.com</domain:name>'
                                f'<domain:period unit="d">1</domain:period>{AUTH}')),
     CodecError, "domain:period unit"),
    (_command(_domain("create", "<domain:name>example.com</domain:name><domain:ns>"
                                "<domain:hostAttr><domain:hostAddr>192.0.2.1"
                                f"</domain:hostAddr></domain:hostAttr></domain:ns>{AUTH}")),
     CodecError, "domain:hostAttr: domain:hostName is missing, found domain:hostAddr"),
    (_command(_domain("create", "<domain:name>example.com</domain:name>"
                                "<domain:contact>sh8013</domain:contact>" + AUTH)),
     CodecError, "domain:contact: the type attribute is required"),
    (_command(_domain("info", "<domain:name><b>example.com</b></domain:name>")),
     CodecError, "domain:name: must hold text, not epp:b"),
    (_command(_domain("transfer", "<domain:name>example.com</domain:name>", ' op="steal"')),
     CodecError, "epp:transfer op"),
    (_command(_domain("transfer", "<domain:name>example.com</domain:name>")),
     CodecError, "epp:transfer: the op attribute is required"),
    (_command(_domain("renew", "<domain:name>example.com</domain:name>"
                               "<domain:curExpDate>03/04/2025</domain:curExpDate>")),
     CodecError, "domain:curExpDate: '03/04/2025' is not an XML Schema date"),
    (_command(_domain("update", "<domain:name>example.com</domain:name><domain:add>"
                                '<domain:status s="deleted"/></domain:add>')),
     CodecError, "domain:status: 'deleted' is not a status value here"),
    (_command(f'<create><host:create xmlns:host="{HOST_NS}"><host:name>ns1.example.com'
              '</host:name><host:addr ip="v6">192.0.2.1</host:addr></host:create></create>'),
     CodecError, "host:addr: '192.0.2.1' does not match ip='v6'"),
    (_command(f'<update><host:update xmlns:host="{HOST_NS}"><host:name>ns1.example.com'
              "</host:name><host:chg/></host:update></update>"),
     CodecError, "host:chg: host:name is missing"),
    (_command(f'<transfer op="query"><host:transfer xmlns:host="{HOST_NS}"><host:name>'
              "ns1.example.com</host:name></host:transfer></transfer>"),
     UnimplementedCommand, "host:transfer is not supported"),
    (_command('<create><obj:create xmlns:obj="urn:example:obj"/></create>'),
     UnimplementedObjectService, "urn:example:obj"),
    (_command(_domain("create", f"<domain:name>example.com</domain:name>{AUTH}"),
              f'<secDNS:create xmlns:secDNS="{SECDNS_NS}"><secDNS:keyData><secDNS:flags>65536'
              "</secDNS:flags><secDNS:protocol>3</secDNS:protocol><secDNS:alg>13</secDNS:alg>"
              "<secDNS:pubKey>AQID</secDNS:pubKey></secDNS:keyData></secDNS:create>"),
     CodecError, "secDNS:flags: must be 0 to 65535, not 65536"),
    (_command(_domain("update", "<domain:name>example.com</domain:name><domain:chg/>"),
              f'<secDNS:create xmlns:secDNS="{SECDNS_NS}"><secDNS:dsData><secDNS:keyTag>1'
              "</secDNS:keyTag><secDNS:alg>13</secDNS:alg><secDNS:digestType>2"
              "</secDNS:digestType><secDNS:digest>ab</secDNS:digest></secDNS:dsData>"
              "</secDNS:create>"),
     CodecError, "secDNS:create: does not extend domain:update"),
    (_command(_domain("update", "<domain:name>example.com</domain:name><domain:chg/>"),
              f'<secDNS:update xmlns:secDNS="{SECDNS_NS}"><secDNS:add/><secDNS:rem>'
              "<secDNS:all>true</secDNS:all></secDNS:rem></secDNS:update>"),
     CodecError, "secDNS:update: unexpected element secDNS:rem"),
    (_command(_domain("update", "<domain:name>example.com</domain:name><domain:chg/>"),
              '<rgp:update xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0">'
              '<rgp:restore op="report"/></rgp:update>'),
     CodecError, "rgp:restore: rgp:report is missing"),
    (_command('<poll op="peek"/>'), CodecError, "epp:poll op"),
    (f'<epp xmlns="{EPP_NS}"><command><logout/><clTRID>ab</clTRID></command></epp>'.encode(),
     CodecError, "epp:clTRID: must be 3 to 64"),
    (f'<epp xmlns="{EPP_NS}"><command><clTRID>ABC-1</clTRID><logout/></command></epp>'
     .encode(), UnknownCommand, "epp:clTRID is not an EPP command"),
])
def test_a_server_refuses_a_malformed_command_naming_the_element(
        document: bytes, error: type[CodecError], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_command(document)


def _response(inner: str, trid: str = "<trID><svTRID>54322-XYZ</svTRID></trID>") -> bytes:
    return f'<epp xmlns="{EPP_NS}"><response>{inner}{trid}</response></epp>'.encode()


OK = '<result code="1000"><msg>Command completed successfully</msg></result>'


@pytest.mark.parametrize(("document", "message"), [
    (f'<epp xmlns="{EPP_NS}"><greeting/></epp>'.encode(), "expected epp:response"),
    (_response(OK, trid=""), "epp:response: epp:trID is missing"),
    (_response(""), "epp:response: epp:result is missing, found epp:trID"),
    (_response('<result code="1234"><msg>Fine</msg></result>'),
     "'1234' is not an EPP result code"),
    (_response('<result code="1000"/>'), "epp:result: epp:msg is missing"),
    (_response(OK + "<resData/>"), "epp:resData: must hold at least one element"),
    (_response(OK + f'<resData><domain:creData xmlns:domain="{DOMAIN_NS}"><domain:name>'
                    "example.com</domain:name></domain:creData></resData>"),
     "domain:creData: domain:crDate is missing"),
    (_response(OK + f'<resData><domain:infData xmlns:domain="{DOMAIN_NS}"><domain:name>'
                    "example.com</domain:name><domain:roid>bad roid</domain:roid>"
                    "<domain:clID>ClientX</domain:clID></domain:infData></resData>"),
     "domain:roid"),
    (_response(OK + f'<resData><domain:chkData xmlns:domain="{DOMAIN_NS}"><domain:cd>'
                    '<domain:name avail="maybe">example.com</domain:name></domain:cd>'
                    "</domain:chkData></resData>"),
     "domain:name avail: 'maybe' is not a boolean"),
    (_response(OK + '<msgQ count="-1" id="1"/>'), "epp:msgQ count: '-1' is not a whole number"),
    (_response(OK + '<msgQ count="1"/>'), "epp:msgQ: the id attribute is required"),
    (_response(OK + f'<extension><secDNS:infData xmlns:secDNS="{SECDNS_NS}"><secDNS:dsData>'
                    "<secDNS:keyTag>12345</secDNS:keyTag><secDNS:alg>256</secDNS:alg>"
                    "<secDNS:digestType>2</secDNS:digestType><secDNS:digest>ab</secDNS:digest>"
                    "</secDNS:dsData></secDNS:infData></extension>"),
     "secDNS:alg: must be 0 to 255"),
    (_response(OK + '<extension><rgp:infData xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0">'
                    '<rgp:rgpStatus s="gracePeriod"/></rgp:infData></extension>'),
     "rgp:rgpStatus: 'gracePeriod'"),
])
def test_a_client_refuses_a_malformed_response_naming_the_element(
        document: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        parse_response(document)


def test_a_greeting_is_not_a_response_and_a_response_is_not_a_greeting() -> None:
    greeting = build_greeting(Greeting("sandbox", WHEN))
    response = build_response(1000, None, None, "54322-XYZ")
    with pytest.raises(CodecError, match="expected epp:response, found epp:greeting"):
        parse_response(greeting)
    with pytest.raises(CodecError, match="expected epp:greeting, found epp:response"):
        parse_greeting(response)


def test_codec_errors_carry_the_result_code_a_server_answers_with() -> None:
    assert CodecError.epp_code == ResultCode.COMMAND_SYNTAX_ERROR
    assert UnknownCommand.epp_code == ResultCode.UNKNOWN_COMMAND
    assert UnimplementedCommand.epp_code == ResultCode.UNIMPLEMENTED_COMMAND
    assert UnimplementedOption.epp_code == ResultCode.UNIMPLEMENTED_OPTION
    assert UnimplementedObjectService.epp_code == ResultCode.UNIMPLEMENTED_OBJECT_SERVICE


# --- the validation hook ---------------------------------------------------------------------

def test_the_validation_hook_sees_every_document_built_and_parsed() -> None:
    seen: list[str] = []

    def validate(root: etree._Element) -> None:
        seen.append(etree.QName(root[0].tag).localname)

    document = build_command(Logout(), validate=validate)
    parse_command(document, validate=validate)
    response = build_response(1500, None, "ABC-12345", "54322-XYZ", validate=validate)
    parse_response(response, validate=validate)
    parse_greeting(build_greeting(Greeting("sandbox", WHEN), validate=validate),
                   validate=validate)
    parse_command(build_hello(validate=validate), validate=validate)
    assert seen == ["command", "command", "response", "response", "greeting", "greeting",
                    "hello", "hello"]


def test_a_refusal_by_the_validation_hook_becomes_a_codec_error() -> None:
    class SchemaViolation(Exception):
        pass

    def refuse(root: etree._Element) -> None:
        raise SchemaViolation("line 1: element 'frob' is not expected")

    with pytest.raises(CodecError, match="refused by schema validation: line 1") as refused:
        parse_command(build_command(Logout()), validate=refuse)
    assert isinstance(refused.value.__cause__, SchemaViolation)
    with pytest.raises(CodecError, match="refused by schema validation"):
        build_response(1000, None, None, "54322-XYZ", validate=refuse)


# --- result codes ----------------------------------------------------------------------------

def test_every_rfc_5730_result_code_has_its_standard_message() -> None:
    assert sorted(RESULT_MESSAGES) == [
        1000, 1001, 1300, 1301, 1500, 2000, 2001, 2002, 2003, 2004, 2005, 2100, 2101, 2102,
        2103, 2104, 2105, 2106, 2200, 2201, 2202, 2300, 2301, 2302, 2303, 2304, 2305, 2306,
        2307, 2308, 2400, 2500, 2501, 2502]
    assert ResultCode(2304).message == "Object status prohibits operation"
    assert ResultCode(1301).message == "Command completed successfully; ack to dequeue"
    assert ResultCode(2502).message == "Session limit exceeded; server closing connection"
    assert [code for code in ResultCode if code.closes_session] == [1500, 2500, 2501, 2502]
    assert ResultCode(1001).succeeded and not ResultCode(2001).succeeded


def test_regshield_errors_map_to_the_result_codes_they_declare() -> None:
    invalid = ValidationFailed([FieldError("name", "required", "is required")])
    assert result_for_error(invalid) == ResultCode.PARAMETER_VALUE_SYNTAX_ERROR
    assert result_for_error(NotFound()) == ResultCode.OBJECT_DOES_NOT_EXIST
    assert result_for_error(Conflict()) == ResultCode.OBJECT_EXISTS
    assert result_for_error(UnimplementedOption("x")) == ResultCode.UNIMPLEMENTED_OPTION
    assert result_for_error(UnsafeOrInvalidXml("x")) == ResultCode.COMMAND_SYNTAX_ERROR
    assert result_for_error(RuntimeError("boom")) == ResultCode.COMMAND_FAILED
