"""Validating EPP documents against the RFC schemas packaged in `registry/schemas/`.

The schemas (RFC 5730 epp and eppcom, 5731 domain, 5732 host, 5733 contact, 5910 secDNS-1.1,
3915 rgp, 8590 changePoll) are compiled once into one lxml XMLSchema, built from a small
wrapper that imports every namespace. Their imports are resolved only to the packaged files:
any other location (another path, a URL) is refused, so compiling never touches the network or
the filesystem outside the package.

epp-1.0 holds object content (`<domain:create>` inside `<create>`, `<resData>`,
`<extension>`) in strict wildcards, so that content is validated against its own schema, and an
element of a namespace without a packaged schema is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from typing import Any, cast

from lxml import etree

from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml, parse_document

# File name -> target namespace, in import order.
SCHEMA_FILES: dict[str, str] = {
    "eppcom-1.0.xsd": "urn:ietf:params:xml:ns:eppcom-1.0",
    "epp-1.0.xsd": EPP_NS,
    "host-1.0.xsd": "urn:ietf:params:xml:ns:host-1.0",
    "domain-1.0.xsd": "urn:ietf:params:xml:ns:domain-1.0",
    "contact-1.0.xsd": "urn:ietf:params:xml:ns:contact-1.0",
    "secDNS-1.1.xsd": "urn:ietf:params:xml:ns:secDNS-1.1",
    "rgp-1.0.xsd": "urn:ietf:params:xml:ns:rgp-1.0",
    "changePoll-1.0.xsd": "urn:ietf:params:xml:ns:changePoll-1.0",
}

# A base URL that names no real place: relative schemaLocations resolve under it, and the
# resolver answers only for the packaged file names beneath it.
_PACKAGE_URL = "regshield-epp-schemas:///"


class SchemaViolation(Exception):
    """The document is well-formed XML but not a valid EPP instance (EPP result 2001).

    `line` is the source line of the offending element, or None for a tree built in memory;
    `path` is its XPath in the document."""

    def __init__(self, reason: str, line: int | None, path: str) -> None:
        where = f"line {line}" if line else f"at {path}"
        super().__init__(f"{where}: {reason}")
        self.line = line
        self.path = path


class SchemaUnavailable(Exception):
    """The packaged schemas could not be compiled (a broken installation, never peer input)."""


class PackagedSchemaResolver(etree.Resolver):
    """Resolves a schema import to a file of `registry/schemas/`, and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def resolve(  # type: ignore[override]  # lxml-stubs omit the context argument
        self, system_url: str, public_id: str, context: object,
    ) -> object:
        inside = system_url.startswith(_PACKAGE_URL)
        name = system_url[len(_PACKAGE_URL):] if inside else ""
        if name not in SCHEMA_FILES:
            # Answer with an empty document rather than None: None would let libxml2 load
            # the location itself. The import then fails and the schema does not compile.
            self.refused.append(system_url)
            return self.resolve_string(b"", context, base_url=None)
        return self.resolve_string(_read_packaged(name), context,
                                   base_url=_PACKAGE_URL + name)


def _read_packaged(name: str) -> bytes:
    return resources.files("regshield.registry").joinpath("schemas", name).read_bytes()


def _wrapper_schema() -> bytes:
    imports = "".join(f'<xs:import namespace="{namespace}" schemaLocation="{name}"/>'
                      for name, namespace in SCHEMA_FILES.items())
    return ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            f"{imports}</xs:schema>").encode()


def compile_schema(wrapper: bytes) -> etree.XMLSchema:
    """An XMLSchema from a wrapper document whose imports may name only packaged files.

    Raises SchemaUnavailable, naming any location that was refused."""
    resolver = PackagedSchemaResolver()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(resolver)
    try:
        document = etree.fromstring(wrapper, parser, base_url=_PACKAGE_URL + "wrapper.xsd")
        return etree.XMLSchema(document)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        refused = f" (refused: {', '.join(resolver.refused)})" if resolver.refused else ""
        raise SchemaUnavailable(f"EPP schemas do not compile: {exc}{refused}") from None


@functools.cache
def epp_schema() -> etree.XMLSchema:
    """The compiled EPP schema set, built on first use. Validation is not thread-safe (lxml
    keeps the last error log on the schema object): share it within one event loop only."""
    return compile_schema(_wrapper_schema())


def validate_epp(document: etree._Element | bytes) -> None:
    """Check a complete EPP instance (an `<epp>` root element, or its bytes).

    Raises SchemaViolation naming the line and the reason; bytes that are not safe,
    well-formed XML raise UnsafeOrInvalidXml first (registry/xml.py)."""
    root = parse_document(document) if isinstance(document, bytes) else document
    if root.tag != f"{{{EPP_NS}}}epp":
        raise SchemaViolation(f"the document element is {root.tag}, not {{{EPP_NS}}}epp",
                              cast("int | None", root.sourceline),  # untyped in lxml-stubs
                              root.getroottree().getpath(root))
    schema = epp_schema()
    if schema.validate(root):
        return
    errors: list[Any] = list(cast("Iterable[Any]", schema.error_log))  # untyped in lxml-stubs
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise SchemaViolation(f"{first.message}{more}", first.line or None, first.path)


def is_valid_epp(document: etree._Element | bytes) -> bool:
    """Whether `validate_epp` accepts the document (malformed bytes are not valid)."""
    try:
        validate_epp(document)
    except (SchemaViolation, UnsafeOrInvalidXml):
        return False
    return True
