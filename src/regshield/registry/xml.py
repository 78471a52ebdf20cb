"""Parsing untrusted EPP XML safely.

Every document from a peer is parsed with entity resolution, DTD loading and network access
off, so that neither an external entity nor an entity expansion ("billion laughs") can read
files, reach the network or exhaust memory. A document that declares a DTD at all is refused:
EPP never needs one.
"""

from __future__ import annotations

from lxml import etree

EPP_NS = "urn:ietf:params:xml:ns:epp-1.0"


class UnsafeOrInvalidXml(Exception):
    """The bytes are not a well-formed, DTD-free XML document."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )


def parse_document(data: bytes) -> etree._Element:
    """The root element of a peer's document. Raises UnsafeOrInvalidXml."""
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeOrInvalidXml(f"not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    doctype: str = getattr(docinfo, "doctype", "")  # missing from lxml-stubs
    if doctype or docinfo.internalDTD is not None:
        raise UnsafeOrInvalidXml("a document type declaration is not allowed in EPP")
    return root
