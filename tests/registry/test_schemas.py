"""EPP documents are validated against the packaged RFC schemas: what the RFCs allow passes,
and anything else is refused with the line and the reason."""

from __future__ import annotations

from importlib import resources

import pytest
from lxml import etree

from regshield.registry.schemas import (
    SCHEMA_FILES,
    SchemaUnavailable,
    SchemaViolation,
    compile_schema,
    is_valid_epp,
    validate_epp,
)
from regshield.registry.xml import parse_document

NAMESPACES = (
    'xmlns="urn:ietf:params:xml:ns:epp-1.0"\n'
    '     xmlns:domain="urn:ietf:params:xml:ns:domain-1.0"\n'
    '     xmlns:host="urn:ietf:params:xml:ns:host-1.0"\n'
    '     xmlns:contact="urn:ietf:params:xml:ns:contact-1.0"\n'
    '     xmlns:secDNS="urn:ietf:params:xml:ns:secDNS-1.1"\n'
    '     xmlns:rgp="urn:ietf:params:xml:ns:rgp-1.0"\n'
    '     xmlns:changePoll="urn:ietf:params:xml:ns:changePoll-1.0"'
)


def epp(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<epp {NAMESPACES}>\n{body}\n</epp>\n'
            ).encode()


def command(verb: str, extension: str = "", client_transaction: str = "ABC-12345") -> bytes:
    extension_part = f"\n  <extension>\n{extension}\n  </extension>" if extension else ""
    return epp(f"<command>\n{verb}{extension_part}\n"
               f"  <clTRID>{client_transaction}</clTRID>\n</command>")


def response(res_data: str = "", extension: str = "", code: int = 1000,
             message_queue: str = "") -> bytes:
    parts = [f'<response>\n  <result code="{code}">\n'
             "    <msg>Command completed successfully</msg>\n  </result>"]
    if message_queue:
        parts.append(message_queue)
    if res_data:
        parts.append(f"  <resData>\n{res_data}\n  </resData>")
    if extension:
        parts.append(f"  <extension>\n{extension}\n  </extension>")
    parts.append("  <trID>\n    <clTRID>ABC-12345</clTRID>\n"
                 "    <svTRID>54321-XYZ</svTRID>\n  </trID>\n</response>")
    return epp("\n".join(parts))


def line_of(document: bytes, marker: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th occurrence of marker in the document."""
    text = document.decode()
    position = -1
    for _ in range(occurrence):
        position = text.index(marker, position + 1)
    return text.count("\n", 0, position) + 1


def refusal(document: bytes) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as refused:
        validate_epp(document)
    assert not is_valid_epp(document)
    return refused.value


GREETING = epp("""<greeting>
  <svID>Example EPP server epp.example.test</svID>
  <svDate>2026-04-03T22:00:00.0Z</svDate>
  <svcMenu>
    <version>1.0</version>
    <lang>en</lang>
    <lang>fr</lang>
    <objURI>urn:ietf:params:xml:ns:domain-1.0</objURI>
    <objURI>urn:ietf:params:xml:ns:host-1.0</objURI>
    <objURI>urn:ietf:params:xml:ns:contact-1.0</objURI>
    <svcExtension>
      <extURI>urn:ietf:params:xml:ns:secDNS-1.1</extURI>
      <extURI>urn:ietf:params:xml:ns:rgp-1.0</extURI>
    </svcExtension>
  </svcMenu>
  <dcp>
    <access><all/></access>
    <statement>
      <purpose><admin/><prov/></purpose>
      <recipient><ours/><public/></recipient>
      <retention><stated/></retention>
    </statement>
  </dcp>
</greeting>""")

HELLO = epp("<hello/>")

LOGIN = command("""  <login>
    <clID>ClientX</clID>
    <pw>foo-BAR2</pw>
    <newPW>bar-FOO2</newPW>
    <options>
      <version>1.0</version>
      <lang>en</lang>
    </options>
    <svcs>
      <objURI>urn:ietf:params:xml:ns:domain-1.0</objURI>
      <objURI>urn:ietf:params:xml:ns:contact-1.0</objURI>
      <svcExtension>
        <extURI>urn:ietf:params:xml:ns:secDNS-1.1</extURI>
      </svcExtension>
    </svcs>
  </login>""")

LOGOUT = command("  <logout/>")

DOMAIN_CHECK = command("""  <check>
    <domain:check>
      <domain:name>example.test</domain:name>
      <domain:name>example.example</domain:name>
    </domain:check>
  </check>""")

DOMAIN_CHECK_ANSWER = response("""    <domain:chkData>
      <domain:cd>
        <domain:name avail="1">example.test</domain:name>
      </domain:cd>
      <domain:cd>
        <domain:name avail="0">example.example</domain:name>
        <domain:reason>In use</domain:reason>
      </domain:cd>
    </domain:chkData>""")

DOMAIN_INFO = command("""  <info>
    <domain:info>
      <domain:name hosts="all">example.test</domain:name>
      <domain:authInfo>
        <domain:pw roid="JD1234-REP">2fooBAR</domain:pw>
      </domain:authInfo>
    </domain:info>
  </info>""")

DOMAIN_INFO_BODY = """    <domain:infData>
      <domain:name>example.test</domain:name>
      <domain:roid>EXAMPLE1-REP</domain:roid>
      <domain:status s="ok"/>
      <domain:registrant>jd1234</domain:registrant>
      <domain:contact type="admin">sh8013</domain:contact>
      <domain:contact type="tech">sh8013</domain:contact>
      <domain:ns>
        <domain:hostObj>ns1.example.test</domain:hostObj>
        <domain:hostObj>ns1.example.net</domain:hostObj>
      </domain:ns>
      <domain:host>ns1.example.test</domain:host>
      <domain:clID>ClientX</domain:clID>
      <domain:crID>ClientY</domain:crID>
      <domain:crDate>2025-04-03T22:00:00.0Z</domain:crDate>
      <domain:upID>ClientX</domain:upID>
      <domain:upDate>2025-12-03T09:00:00.0Z</domain:upDate>
      <domain:exDate>2027-04-03T22:00:00.0Z</domain:exDate>
      <domain:trDate>2026-01-08T09:00:00.0Z</domain:trDate>
      <domain:authInfo>
        <domain:pw>2fooBAR</domain:pw>
      </domain:authInfo>
    </domain:infData>"""

DOMAIN_INFO_ANSWER = response(DOMAIN_INFO_BODY)

DOMAIN_CREATE = command("""  <create>
    <domain:create>
      <domain:name>example.test</domain:name>
      <domain:period unit="y">2</domain:period>
      <domain:ns>
        <domain:hostAttr>
          <domain:hostName>ns1.example.test</domain:hostName>
          <domain:hostAddr ip="v4">192.0.2.2</domain:hostAddr>
          <domain:hostAddr ip="v6">2001:db8::1</domain:hostAddr>
        </domain:hostAttr>
        <domain:hostAttr>
          <domain:hostName>ns2.example.net</domain:hostName>
        </domain:hostAttr>
      </domain:ns>
      <domain:registrant>jd1234</domain:registrant>
      <domain:contact type="admin">sh8013</domain:contact>
      <domain:contact type="tech">sh8013</domain:contact>
      <domain:authInfo>
        <domain:pw>2fooBAR</domain:pw>
      </domain:authInfo>
    </domain:create>
  </create>""")

DOMAIN_CREATE_ANSWER = response("""    <domain:creData>
      <domain:name>example.test</domain:name>
      <domain:crDate>2026-04-03T22:00:00.0Z</domain:crDate>
      <domain:exDate>2028-04-03T22:00:00.0Z</domain:exDate>
    </domain:creData>""")

DOMAIN_UPDATE = command("""  <update>
    <domain:update>
      <domain:name>example.test</domain:name>
      <domain:add>
        <domain:ns>
          <domain:hostObj>ns2.example.test</domain:hostObj>
        </domain:ns>
        <domain:contact type="tech">mak21</domain:contact>
        <domain:status s="clientHold" lang="en">Payment overdue.</domain:status>
      </domain:add>
      <domain:rem>
        <domain:ns>
          <domain:hostObj>ns1.example.test</domain:hostObj>
        </domain:ns>
        <domain:contact type="tech">sh8013</domain:contact>
        <domain:status s="clientUpdateProhibited"/>
      </domain:rem>
      <domain:chg>
        <domain:registrant>sh8013</domain:registrant>
        <domain:authInfo>
          <domain:null/>
        </domain:authInfo>
      </domain:chg>
    </domain:update>
  </update>""")

DOMAIN_DELETE = command("""  <delete>
    <domain:delete>
      <domain:name>example.test</domain:name>
    </domain:delete>
  </delete>""")

DOMAIN_RENEW = command("""  <renew>
    <domain:renew>
      <domain:name>example.test</domain:name>
      <domain:curExpDate>2027-04-03</domain:curExpDate>
      <domain:period unit="m">12</domain:period>
    </domain:renew>
  </renew>""")

DOMAIN_RENEW_ANSWER = response("""    <domain:renData>
      <domain:name>example.test</domain:name>
      <domain:exDate>2028-04-03T22:00:00.0Z</domain:exDate>
    </domain:renData>""")

DOMAIN_TRANSFER_REQUEST = command("""  <transfer op="request">
    <domain:transfer>
      <domain:name>example.test</domain:name>
      <domain:period unit="y">1</domain:period>
      <domain:authInfo>
        <domain:pw roid="JD1234-REP">2fooBAR</domain:pw>
      </domain:authInfo>
    </domain:transfer>
  </transfer>""")

DOMAIN_TRANSFER_BODY = """    <domain:trnData>
      <domain:name>example.test</domain:name>
      <domain:trStatus>pending</domain:trStatus>
      <domain:reID>ClientX</domain:reID>
      <domain:reDate>2026-06-06T22:00:00.0Z</domain:reDate>
      <domain:acID>ClientY</domain:acID>
      <domain:acDate>2026-06-11T22:00:00.0Z</domain:acDate>
      <domain:exDate>2028-09-08T22:00:00.0Z</domain:exDate>
    </domain:trnData>"""

DOMAIN_TRANSFER_ANSWER = response(DOMAIN_TRANSFER_BODY, code=1001)

HOST_CREATE = command("""  <create>
    <host:create>
      <host:name>ns1.example.test</host:name>
      <host:addr ip="v4">192.0.2.2</host:addr>
      <host:addr ip="v4">192.0.2.29</host:addr>
      <host:addr ip="v6">1080:0:0:0:8:800:200C:417A</host:addr>
    </host:create>
  </create>""")

HOST_INFO = command("""  <info>
    <host:info>
      <host:name>ns1.example.test</host:name>
    </host:info>
  </info>""")

HOST_INFO_ANSWER = response("""    <host:infData>
      <host:name>ns1.example.test</host:name>
      <host:roid>NS1_EXAMPLE1-REP</host:roid>
      <host:status s="linked"/>
      <host:status s="clientUpdateProhibited"/>
      <host:addr ip="v4">192.0.2.2</host:addr>
      <host:addr ip="v6">1080:0:0:0:8:800:200C:417A</host:addr>
      <host:clID>ClientY</host:clID>
      <host:crID>ClientX</host:crID>
      <host:crDate>2025-04-03T22:00:00.0Z</host:crDate>
      <host:upID>ClientX</host:upID>
      <host:upDate>2025-12-03T09:00:00.0Z</host:upDate>
    </host:infData>""")


def contact_create(postal_type: str = "int", street_lines: int = 2) -> bytes:
    streets = "\n".join(f"          <contact:street>{number} Example Street</contact:street>"
                        for number in range(1, street_lines + 1))
    return command(f"""  <create>
    <contact:create>
      <contact:id>sh8013</contact:id>
      <contact:postalInfo type="{postal_type}">
        <contact:name>John Doe</contact:name>
        <contact:org>Example Inc.</contact:org>
        <contact:addr>
{streets}
          <contact:city>Dulles</contact:city>
          <contact:sp>VA</contact:sp>
          <contact:pc>20166-6503</contact:pc>
          <contact:cc>US</contact:cc>
        </contact:addr>
      </contact:postalInfo>
      <contact:voice x="1234">+1.7035555555</contact:voice>
      <contact:fax>+1.7035555556</contact:fax>
      <contact:email>jdoe@example.test</contact:email>
      <contact:authInfo>
        <contact:pw>2fooBAR</contact:pw>
      </contact:authInfo>
      <contact:disclose flag="0">
        <contact:voice/>
        <contact:email/>
      </contact:disclose>
    </contact:create>
  </create>""")


CONTACT_INFO = command("""  <info>
    <contact:info>
      <contact:id>sh8013</contact:id>
      <contact:authInfo>
        <contact:pw>2fooBAR</contact:pw>
      </contact:authInfo>
    </contact:info>
  </info>""")

CONTACT_INFO_ANSWER = response("""    <contact:infData>
      <contact:id>sh8013</contact:id>
      <contact:roid>SH8013-REP</contact:roid>
      <contact:status s="linked"/>
      <contact:status s="clientDeleteProhibited"/>
      <contact:postalInfo type="int">
        <contact:name>John Doe</contact:name>
        <contact:org>Example Inc.</contact:org>
        <contact:addr>
          <contact:street>123 Example Dr.</contact:street>
          <contact:street>Suite 100</contact:street>
          <contact:city>Dulles</contact:city>
          <contact:sp>VA</contact:sp>
          <contact:pc>20166-6503</contact:pc>
          <contact:cc>US</contact:cc>
        </contact:addr>
      </contact:postalInfo>
      <contact:postalInfo type="loc">
        <contact:name>Jean Dupont</contact:name>
        <contact:addr>
          <contact:city>Paris</contact:city>
          <contact:cc>FR</contact:cc>
        </contact:addr>
      </contact:postalInfo>
      <contact:voice x="1234">+1.7035555555</contact:voice>
      <contact:email>jdoe@example.test</contact:email>
      <contact:clID>ClientY</contact:clID>
      <contact:crID>ClientX</contact:crID>
      <contact:crDate>2025-04-03T22:00:00.0Z</contact:crDate>
      <contact:upID>ClientX</contact:upID>
      <contact:upDate>2025-12-03T09:00:00.0Z</contact:upDate>
      <contact:authInfo>
        <contact:pw>2fooBAR</contact:pw>
      </contact:authInfo>
      <contact:disclose flag="0">
        <contact:name type="loc"/>
        <contact:voice/>
      </contact:disclose>
    </contact:infData>""")

POLL_REQUEST = command('  <poll op="req"/>')

POLL_ACK = command('  <poll op="ack" msgID="12345"/>')

MESSAGE_QUEUE = """  <msgQ count="5" id="12345">
    <qDate>2026-06-06T22:00:00.0Z</qDate>
    <msg lang="en">Transfer requested.</msg>
  </msgQ>"""

POLL_ANSWER = response(DOMAIN_TRANSFER_BODY, code=1301, message_queue=MESSAGE_QUEUE)

CHANGE_POLL_ANSWER = response(DOMAIN_INFO_BODY, code=1301, message_queue=MESSAGE_QUEUE,
                              extension="""    <changePoll:changeData state="after">
      <changePoll:operation op="sync">custom</changePoll:operation>
      <changePoll:date>2026-06-06T22:00:00.0Z</changePoll:date>
      <changePoll:svTRID>12345-XYZ</changePoll:svTRID>
      <changePoll:who>URS Admin</changePoll:who>
      <changePoll:caseId type="urs">urs123</changePoll:caseId>
      <changePoll:reason>URS Lock</changePoll:reason>
    </changePoll:changeData>""")


def ds_data(digest: str = "49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC") -> str:
    return f"""      <secDNS:dsData>
        <secDNS:keyTag>12345</secDNS:keyTag>
        <secDNS:alg>13</secDNS:alg>
        <secDNS:digestType>2</secDNS:digestType>
        <secDNS:digest>{digest}</secDNS:digest>
      </secDNS:dsData>"""


def domain_create_with_ds(digest: str = "49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC") -> bytes:
    return command("""  <create>
    <domain:create>
      <domain:name>example.test</domain:name>
      <domain:authInfo>
        <domain:pw>2fooBAR</domain:pw>
      </domain:authInfo>
    </domain:create>
  </create>""", extension=f"""    <secDNS:create>
      <secDNS:maxSigLife>604800</secDNS:maxSigLife>
{ds_data(digest)}
    </secDNS:create>""")


SECDNS_UPDATE = command("""  <update>
    <domain:update>
      <domain:name>example.test</domain:name>
    </domain:update>
  </update>""", extension=f"""    <secDNS:update urgent="true">
      <secDNS:rem>
        <secDNS:all>true</secDNS:all>
      </secDNS:rem>
      <secDNS:add>
{ds_data()}
      </secDNS:add>
      <secDNS:chg>
        <secDNS:maxSigLife>86400</secDNS:maxSigLife>
      </secDNS:chg>
    </secDNS:update>""")

RGP_RESTORE = command("""  <update>
    <domain:update>
      <domain:name>example.test</domain:name>
      <domain:chg/>
    </domain:update>
  </update>""", extension="""    <rgp:update>
      <rgp:restore op="request"/>
    </rgp:update>""")

RGP_REPORT = command("""  <update>
    <domain:update>
      <domain:name>example.test</domain:name>
      <domain:chg/>
    </domain:update>
  </update>""", extension="""    <rgp:update>
      <rgp:restore op="report">
        <rgp:report>
          <rgp:preData>Pre-delete registration data goes here.</rgp:preData>
          <rgp:postData>Post-restore registration data goes here.</rgp:postData>
          <rgp:delTime>2026-06-01T00:00:00.0Z</rgp:delTime>
          <rgp:resTime>2026-06-10T00:00:00.0Z</rgp:resTime>
          <rgp:resReason>Registrant error.</rgp:resReason>
          <rgp:statement>The information is true.</rgp:statement>
          <rgp:statement lang="en">The restore is not for any other purpose.</rgp:statement>
        </rgp:report>
      </rgp:restore>
    </rgp:update>""")

RGP_INFO_ANSWER = response(DOMAIN_INFO_BODY, extension="""    <rgp:infData>
      <rgp:rgpStatus s="redemptionPeriod"/>
    </rgp:infData>""")

SECDNS_INFO_ANSWER = response(DOMAIN_INFO_BODY, extension=f"""    <secDNS:infData>
{ds_data()}
    </secDNS:infData>""")

ERROR_ANSWER = epp("""<response>
  <result code="2004">
    <msg>Parameter value range error</msg>
    <value><domain:period unit="y">100</domain:period></value>
  </result>
  <result code="2005">
    <msg>Parameter value syntax error</msg>
    <extValue>
      <value><contact:cc>USA</contact:cc></value>
      <reason>Country codes have two letters.</reason>
    </extValue>
  </result>
  <trID>
    <svTRID>54321-XYZ</svTRID>
  </trID>
</response>""")

VALID_DOCUMENTS = {
    "greeting": GREETING,
    "hello": HELLO,
    "login": LOGIN,
    "logout": LOGOUT,
    "domain check": DOMAIN_CHECK,
    "domain check answer": DOMAIN_CHECK_ANSWER,
    "domain info": DOMAIN_INFO,
    "domain info answer": DOMAIN_INFO_ANSWER,
    "domain create": DOMAIN_CREATE,
    "domain create answer": DOMAIN_CREATE_ANSWER,
    "domain update": DOMAIN_UPDATE,
    "domain delete": DOMAIN_DELETE,
    "domain renew": DOMAIN_RENEW,
    "domain renew answer": DOMAIN_RENEW_ANSWER,
    "domain transfer request": DOMAIN_TRANSFER_REQUEST,
    "domain transfer answer": DOMAIN_TRANSFER_ANSWER,
    "host create": HOST_CREATE,
    "host info": HOST_INFO,
    "host info answer": HOST_INFO_ANSWER,
    "contact create": contact_create(),
    "contact info": CONTACT_INFO,
    "contact info answer": CONTACT_INFO_ANSWER,
    "poll request": POLL_REQUEST,
    "poll acknowledgement": POLL_ACK,
    "poll answer with message queue": POLL_ANSWER,
    "poll answer with changePoll": CHANGE_POLL_ANSWER,
    "domain create with secDNS dsData": domain_create_with_ds(),
    "domain update with secDNS": SECDNS_UPDATE,
    "domain info answer with secDNS": SECDNS_INFO_ANSWER,
    "rgp restore request": RGP_RESTORE,
    "rgp restore report": RGP_REPORT,
    "rgp info answer": RGP_INFO_ANSWER,
    "error answer echoing values": ERROR_ANSWER,
    "domain create without a code (RFC 9154)": DOMAIN_CREATE.replace(
        b"<domain:pw>2fooBAR</domain:pw>", b"<domain:pw/>"),
}


@pytest.mark.parametrize("document", VALID_DOCUMENTS.values(), ids=VALID_DOCUMENTS.keys())
def test_documents_the_rfcs_allow_are_valid(document: bytes) -> None:
    validate_epp(document)
    assert is_valid_epp(document)


def test_a_parsed_root_element_is_validated_like_its_bytes() -> None:
    root = parse_document(DOMAIN_CREATE)
    validate_epp(root)
    period = root.find(".//{urn:ietf:params:xml:ns:domain-1.0}period")
    assert period is not None
    period.set("unit", "d")
    with pytest.raises(SchemaViolation) as refused:
        validate_epp(root)
    assert refused.value.line == line_of(DOMAIN_CREATE, "<domain:period")
    assert "'d'" in str(refused.value)


def test_a_tree_built_in_memory_is_refused_with_the_element_path() -> None:
    envelope = etree.Element("{urn:ietf:params:xml:ns:epp-1.0}epp")
    command_element = etree.SubElement(envelope, "{urn:ietf:params:xml:ns:epp-1.0}command")
    etree.SubElement(command_element, "{urn:ietf:params:xml:ns:epp-1.0}clTRID").text = "ABC-1"
    with pytest.raises(SchemaViolation) as refused:
        validate_epp(envelope)
    assert refused.value.line is None
    assert refused.value.path == "/ns0:epp/ns0:command/ns0:clTRID"
    assert str(refused.value).startswith(f"at {refused.value.path}: ")
    assert "clTRID" in str(refused.value) and "not expected" in str(refused.value)


def test_a_domain_create_with_two_periods_is_refused_at_the_second() -> None:
    period = '      <domain:period unit="y">2</domain:period>\n'
    document = DOMAIN_CREATE.replace(period.encode(), (period * 2).encode())
    refused = refusal(document)
    line = line_of(document, "<domain:period", occurrence=2)
    assert refused.line == line
    assert str(refused).startswith(f"line {line}: ")
    assert "period" in str(refused) and "not expected" in str(refused)


def test_a_period_in_days_is_refused() -> None:
    document = DOMAIN_CREATE.replace(b'unit="y"', b'unit="d"')
    refused = refusal(document)
    assert refused.line == line_of(document, "<domain:period")
    assert "'unit'" in str(refused) and "'d'" in str(refused)


def test_a_period_over_99_is_refused() -> None:
    document = DOMAIN_CREATE.replace(b'unit="y">2<', b'unit="y">100<')
    assert "maximum value" in str(refusal(document))


def test_a_domain_create_without_authinfo_is_refused() -> None:
    document = DOMAIN_CREATE.replace(
        b"      <domain:authInfo>\n        <domain:pw>2fooBAR</domain:pw>\n"
        b"      </domain:authInfo>\n", b"")
    assert b"authInfo" not in document
    refused = refusal(document)
    assert refused.line == line_of(document, "<domain:create")
    assert "Missing child element" in str(refused) and "authInfo" in str(refused)


def test_an_unknown_element_inside_an_object_command_is_refused() -> None:
    document = DOMAIN_CREATE.replace(
        b"      <domain:registrant>",
        b"      <domain:colour>blue</domain:colour>\n      <domain:registrant>")
    refused = refusal(document)
    assert refused.line == line_of(document, "<domain:colour")
    assert "colour" in str(refused) and "not expected" in str(refused)


def test_an_unknown_envelope_element_is_refused() -> None:
    document = DOMAIN_DELETE.replace(b"  <clTRID>", b"  <priority>high</priority>\n  <clTRID>")
    refused = refusal(document)
    assert refused.line == line_of(document, "<priority>")
    assert "priority" in str(refused)


def test_an_extension_without_a_packaged_schema_is_refused() -> None:
    document = command("""  <delete>
    <domain:delete>
      <domain:name>example.test</domain:name>
    </domain:delete>
  </delete>""", extension='    <fee:delete xmlns:fee="urn:example:fee-0.5"/>')
    refused = refusal(document)
    assert refused.line == line_of(document, "<fee:delete")
    assert "strict wildcard" in str(refused)


def test_a_contact_postal_info_type_other_than_int_or_loc_is_refused() -> None:
    document = contact_create(postal_type="intl")
    refused = refusal(document)
    assert refused.line == line_of(document, "<contact:postalInfo")
    assert "'type'" in str(refused) and "'intl'" in str(refused)


def test_more_than_three_street_lines_are_refused_at_the_fourth() -> None:
    assert is_valid_epp(contact_create(street_lines=3))
    document = contact_create(street_lines=4)
    refused = refusal(document)
    assert refused.line == line_of(document, "<contact:street>", occurrence=4)
    assert "street" in str(refused) and "not expected" in str(refused)


def test_a_contact_country_code_must_have_two_letters() -> None:
    document = contact_create().replace(b">US<", b">USA<")
    refused = refusal(document)
    assert refused.line == line_of(document, "<contact:cc>")
    assert "length" in str(refused)


def test_a_client_transaction_id_over_64_characters_is_refused() -> None:
    assert is_valid_epp(command("  <logout/>", client_transaction="x" * 64))
    document = command("  <logout/>", client_transaction="x" * 65)
    refused = refusal(document)
    assert refused.line == line_of(document, "<clTRID>")
    assert "clTRID" in str(refused) and "'65'" in str(refused) and "'64'" in str(refused)


def test_a_login_password_over_16_characters_is_refused() -> None:
    document = LOGIN.replace(b"<pw>foo-BAR2</pw>", b"<pw>" + b"p" * 17 + b"</pw>")
    refused = refusal(document)
    assert refused.line == line_of(document, "<pw>")
    assert "maximum length" in str(refused)


def test_a_ds_digest_that_is_not_hex_is_refused() -> None:
    document = domain_create_with_ds(digest="not-hexadecimal")
    refused = refusal(document)
    assert refused.line == line_of(document, "<secDNS:digest>")
    assert "digest" in str(refused) and "hexBinary" in str(refused)


def test_a_result_code_outside_the_rfc_list_is_refused() -> None:
    document = response(code=1002)
    refused = refusal(document)
    assert refused.line == line_of(document, "<result")
    assert "'code'" in str(refused) and "'1002'" in str(refused)


def test_a_domain_status_outside_the_rfc_list_is_refused() -> None:
    document = DOMAIN_INFO_ANSWER.replace(b'<domain:status s="ok"/>',
                                          b'<domain:status s="registrarLock"/>')
    refused = refusal(document)
    assert refused.line == line_of(document, "<domain:status")
    assert "registrarLock" in str(refused)


def test_a_document_that_is_not_an_epp_envelope_is_refused() -> None:
    document = (b'<domain:create xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">'
                b"<domain:name>example.test</domain:name><domain:authInfo>"
                b"<domain:pw>2fooBAR</domain:pw></domain:authInfo></domain:create>")
    refused = refusal(document)
    assert refused.line == 1
    assert "not {urn:ietf:params:xml:ns:epp-1.0}epp" in str(refused)


def test_malformed_bytes_are_not_valid() -> None:
    assert not is_valid_epp(b"<epp xmlns='urn:ietf:params:xml:ns:epp-1.0'><hello></epp>")


@pytest.mark.parametrize("location", [
    "/etc/hostname", "file:///etc/hostname", "../xml.py", "http://127.0.0.1:9/epp-1.0.xsd",
])
def test_schema_imports_outside_the_package_are_refused(location: str) -> None:
    wrapper = (f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
               f'<xs:import namespace="urn:example:outside" schemaLocation="{location}"/>'
               f"</xs:schema>").encode()
    with pytest.raises(SchemaUnavailable, match="refused"):
        compile_schema(wrapper)


def test_a_packaged_schema_finds_its_own_imports_in_the_package() -> None:
    # domain-1.0 imports epp, eppcom and host by file name; only the resolver can supply them.
    wrapper = (b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
               b'<xs:import namespace="urn:ietf:params:xml:ns:domain-1.0"'
               b' schemaLocation="domain-1.0.xsd"/></xs:schema>')
    domain_only = compile_schema(wrapper)
    assert domain_only.validate(parse_document(DOMAIN_CREATE))
    assert not domain_only.validate(parse_document(CONTACT_INFO))


def test_every_packaged_schema_is_loaded_under_its_own_namespace() -> None:
    folder = resources.files("regshield.registry").joinpath("schemas")
    packaged = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".xsd"))
    assert packaged == sorted(SCHEMA_FILES)
    for name, namespace in SCHEMA_FILES.items():
        schema = etree.fromstring(folder.joinpath(name).read_bytes())
        assert schema.get("targetNamespace") == namespace, name
