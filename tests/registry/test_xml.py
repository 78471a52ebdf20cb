"""Untrusted EPP XML is parsed with entities, DTDs and the network off."""

from __future__ import annotations

from pathlib import Path

import pytest

from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml, parse_document


def test_a_well_formed_epp_document_parses_in_the_epp_namespace() -> None:
    root = parse_document(
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello/></epp>')
    assert root.tag == f"{{{EPP_NS}}}epp"
    assert [child.tag for child in root] == [f"{{{EPP_NS}}}hello"]


def test_an_external_entity_cannot_read_a_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-registrar-password")
    document = (f'<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY leak SYSTEM "file://{secret}">]>'
                '<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello>&leak;</hello></epp>')
    with pytest.raises(UnsafeOrInvalidXml) as refused:
        parse_document(document.encode())
    assert "the-registrar-password" not in str(refused.value)


def test_entity_expansion_is_refused_without_expanding() -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    document = ('<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY l0 "lol">' + lol + ']>'
                '<epp>&l9;</epp>')
    # libxml2 stops the amplification itself; a DTD that survived would be refused after.
    with pytest.raises(UnsafeOrInvalidXml,
                       match=r"(amplification|document type declaration)"):
        parse_document(document.encode())


@pytest.mark.parametrize("document", [
    b'<!DOCTYPE epp SYSTEM "http://127.0.0.1:9/epp.dtd"><epp/>',
    b"<!DOCTYPE epp><epp/>",
])
def test_any_document_type_declaration_is_refused(document: bytes) -> None:
    with pytest.raises(UnsafeOrInvalidXml, match="document type declaration"):
        parse_document(document)


@pytest.mark.parametrize("document", [b"", b"<epp>", b"<epp></ep>", b"\xff\xfe<epp/>",
                                      b"<epp>&undefined;</epp>"])
def test_malformed_documents_are_refused_with_a_reason(document: bytes) -> None:
    with pytest.raises(UnsafeOrInvalidXml, match="not well-formed"):
        parse_document(document)
