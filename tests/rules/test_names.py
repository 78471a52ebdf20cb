"""Domain and host names (rules/names.py): IDNA 2008 + UTS 46, LDH labels, nameserver lists."""

from __future__ import annotations

import dataclasses
from typing import Any

import idna
import pytest

from regshield.errors import FieldError, ValidationFailed
from regshield.rules import names
from regshield.rules.names import (
    MAX_INPUT,
    DomainName,
    parse_domain_name,
    parse_host_name,
    parse_nameservers,
    validate_domain_name,
)


def refusals(text: Any, **options: Any) -> list[FieldError]:
    with pytest.raises(ValidationFailed) as refused:
        parse_domain_name(text, **options)
    assert all(error.message for error in refused.value.errors)
    return refused.value.errors


def codes(text: Any, **options: Any) -> list[str]:
    return [error.code for error in refusals(text, **options)]


# What an accepted name looks like


def test_an_ascii_name_is_lower_cased_and_loses_its_trailing_dot() -> None:
    name = parse_domain_name("WWW.Example.COM.")

    assert name == DomainName(ascii="www.example.com", unicode="www.example.com")
    assert name.labels == ("www", "example", "com")
    assert name.tld == "com"
    assert not name.is_idn
    assert str(name) == "www.example.com"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_domain_name("  example.com\n").ascii == "example.com"


# Real IDNs: the UTS 46 / IDNA 2008 test names of IANA's IDN test TLDs and common examples.
IDN_PAIRS = [
    ("bücher.example", "xn--bcher-kva.example"),
    ("пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f"),  # Cyrillic
    ("παράδειγμα.δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp"),  # Greek
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),  # Japanese
    ("测试.example", "xn--0zwm56d.example"),  # Chinese
    ("مثال.إختبار", "xn--mgbh0fb.xn--kgbechtv"),  # Arabic, right to left
]


@pytest.mark.parametrize(("u_form", "a_form"), IDN_PAIRS)
def test_u_label_and_a_label_forms_of_an_idn_are_the_same_name(u_form: str, a_form: str) -> None:
    from_u = parse_domain_name(u_form)
    from_a = parse_domain_name(a_form)

    assert from_u == from_a
    assert (from_u.ascii, from_u.unicode) == (a_form, u_form)
    assert from_u.is_idn


def test_the_tld_of_an_idn_is_given_in_a_label_form() -> None:
    name = parse_domain_name("пример.испытание")

    assert name.tld == "xn--80akhbyknj4f"
    assert name.labels == ("xn--e1afmkfd", "xn--80akhbyknj4f")


def test_an_upper_case_a_label_is_accepted_and_lower_cased() -> None:
    name = parse_domain_name("XN--BCHER-KVA.EXAMPLE")

    assert (name.ascii, name.unicode) == ("xn--bcher-kva.example", "bücher.example")


def full_width(ascii: str) -> str:
    """The FULLWIDTH LATIN forms (U+FF41...) of lower-case ASCII letters."""
    return "".join(chr(ord(letter) + 0xFEE0) for letter in ascii)


@pytest.mark.parametrize(("typed", "ascii"), [
    ("BÜCHER.Example", "xn--bcher-kva.example"),  # UTS 46 case folding
    ("ΠΑΡΆΔΕΙΓΜΑ.δοκιμή", "xn--hxajbheg2az3al.xn--jxalpdlp"),
    (f"{full_width('example')}\u3002{full_width('com')}", "example.com"),  # ideographic stop
    ("例え\uff0eテスト", "xn--r8jz45g.xn--zckzah"),  # full-width full stop
])
def test_uts46_maps_case_width_and_dots_before_checking(typed: str, ascii: str) -> None:
    assert parse_domain_name(typed).ascii == ascii


def test_deviation_characters_are_kept_because_processing_is_not_transitional() -> None:
    # Transitional processing (IDNA 2003 compatibility) would turn faß.de into fass.de.
    name = parse_domain_name("faß.de")

    assert (name.ascii, name.unicode) == ("xn--fa-hia.de", "faß.de")


def test_a_name_may_mix_a_labels_and_u_labels() -> None:
    canonical = parse_domain_name("пример.испытание")

    assert parse_domain_name("пример.xn--80akhbyknj4f") == canonical
    assert parse_domain_name("xn--e1afmkfd.испытание") == canonical


def test_a_name_of_exactly_253_characters_is_accepted_with_or_without_its_trailing_dot() -> None:
    text = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(text) == 253

    assert parse_domain_name(text).ascii == text
    assert parse_domain_name(text + ".").ascii == text


def test_a_label_of_exactly_63_characters_is_accepted() -> None:
    assert parse_domain_name("a" * 63 + ".com").labels[0] == "a" * 63


def test_labels_may_start_with_a_digit_and_hold_single_hyphens() -> None:
    assert parse_domain_name("1-800-flowers.com").ascii == "1-800-flowers.com"


def test_a_single_label_name_is_accepted_when_one_label_is_enough() -> None:
    assert parse_domain_name("COM", min_labels=1).ascii == "com"
    assert parse_domain_name("испытание", min_labels=1).ascii == "xn--80akhbyknj4f"


# What is refused, and why

REFUSED = [
    # (input, the one reason)
    (None, "required"),
    ("", "required"),
    ("   ", "required"),
    (42, "not_text"),
    ("x" * (MAX_INPUT + 1), "too_long"),
    ("example..com", "empty_label"),
    (".example.com", "empty_label"),
    ("example.com..", "empty_label"),
    ("\u00ad.example", "empty_label"),  # a soft hyphen maps to nothing
    ("a" * 64 + ".com", "label_too_long"),
    ("ü" * 60 + ".com", "label_too_long"),  # 60 characters, but longer than 63 as an A-label
    ("under_score.example", "invalid_characters"),
    ("exa mple.com", "invalid_characters"),
    ("ex!ample.com", "invalid_characters"),
    ("bü_cher.example", "invalid_characters"),
    ("-example.com", "hyphen_position"),
    ("example-.com", "hyphen_position"),
    ("ab--cd.com", "hyphen_position"),  # `--` in positions 3-4 is reserved for xn--
    ("-bücher.example", "hyphen_position"),
    ("xn--bücher.example", "hyphen_position"),  # an xn-- label must be ASCII
    ("xn--zz.example", "invalid_a_label"),  # not valid Punycode
    ("xn--a.example", "invalid_a_label"),  # decodes to a control character
    ("xn---bbk.example", "invalid_a_label"),  # a non-canonical spelling of xn--bbk
    ("xn--ls8h.example", "invalid_a_label"),  # decodes to an emoji
    ("😀.example", "invalid_u_label"),  # emoji are DISALLOWED in IDNA 2008
    ("☃.example", "invalid_u_label"),
    ("i\u2764.example", "invalid_u_label"),  # heavy black heart, valid in IDNA 2003 only
    ("x\u200dy.example", "invalid_u_label"),  # zero width joiner outside its context
    ("a\u00a0b.example", "invalid_u_label"),  # no-break space
    ("1a.مثال", "bidi_rule"),  # an LTR label must start with a letter in a RTL name
    ("192.0.2.1", "numeric_tld"),
    ("example.123", "numeric_tld"),
    ("com", "too_few_labels"),
    (".", "too_few_labels"),
]


@pytest.mark.parametrize(("text", "code"), REFUSED)
def test_a_name_breaking_one_rule_is_refused_with_that_reason(text: Any, code: str) -> None:
    assert codes(text) == [code]


def test_a_name_longer_than_253_characters_is_refused() -> None:
    text = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])

    assert codes(text) == ["too_long"]


def test_the_message_names_the_offending_label() -> None:
    [error] = refusals("www.under_score.example")

    assert "'under_score'" in error.message
    assert "'_'" in error.message


def test_every_reason_is_reported_at_once() -> None:
    found = codes("bad_label.-dash.xn--zz." + "a" * 64 + ".123")

    assert found == ["invalid_characters", "hyphen_position", "invalid_a_label",
                     "label_too_long", "numeric_tld"]


def test_errors_carry_the_field_they_were_given() -> None:
    errors = refusals("under_score.example", field="domain")

    assert [error.field for error in errors] == ["domain"]


def test_overlong_input_is_refused_before_any_idna_work(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoIdna:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"idna.{name} was used")

    monkeypatch.setattr(names, "idna", NoIdna())

    assert codes("ü" * (MAX_INPUT + 1)) == ["too_long"]


def test_a_fake_a_label_is_refused_even_where_idna_would_decode_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for an idna release that decodes xn---bbk to ま without checking that ま
    # encodes back to it (ま is xn--bbk): two spellings of one name must never both pass.
    def lenient_ulabel(label: str) -> str:
        return label[len("xn--"):].encode("ascii").decode("punycode")

    monkeypatch.setattr(idna, "ulabel", lenient_ulabel)

    [error] = refusals("xn---bbk.example")
    assert error.code == "invalid_a_label"
    assert "xn--bbk" in error.message
    assert parse_domain_name("xn--bbk.example").unicode == "ま.example"


def test_a_collecting_flow_gets_the_errors_appended_and_no_name() -> None:
    errors: list[FieldError] = [FieldError("other", "required", "is required")]

    assert validate_domain_name("under_score.example", "name", errors) is None
    assert [error.code for error in errors] == ["required", "invalid_characters"]
    assert validate_domain_name("bücher.example", "name", errors) is not None
    assert len(errors) == 2


def test_a_domain_name_cannot_be_changed_once_checked() -> None:
    name = parse_domain_name("example.com")

    with pytest.raises(dataclasses.FrozenInstanceError):
        name.ascii = "example.net"  # type: ignore[misc]


# Host names (nameservers, later glue)


def test_a_host_name_follows_the_domain_name_rules() -> None:
    host = parse_host_name("NS1.Bücher.Example.", "host")

    assert (host.ascii, host.unicode) == ("ns1.xn--bcher-kva.example", "ns1.bücher.example")


@pytest.mark.parametrize(("text", "code"), [
    ("localhost", "too_few_labels"),
    ("192.0.2.53", "numeric_tld"),
    ("ns_1.example.net", "invalid_characters"),
])
def test_a_host_name_is_refused_naming_its_field(text: str, code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_host_name(text, "nameserver")

    assert [(e.field, e.code) for e in refused.value.errors] == [("nameserver", code)]


# Nameserver lists


def test_nameservers_are_returned_in_order_in_canonical_form() -> None:
    hosts = parse_nameservers(["ns1.example.net", "NS2.bücher.example."])

    assert [host.ascii for host in hosts] == ["ns1.example.net", "ns2.xn--bcher-kva.example"]


def test_each_refused_nameserver_is_reported_with_its_index() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_nameservers(["ns1.example.net", "bad_host.example", "ns3.example.net",
                           "192.0.2.1"])

    assert [(e.field, e.code) for e in refused.value.errors] == [
        ("nameservers.1", "invalid_characters"), ("nameservers.3", "numeric_tld")]


def test_the_same_host_written_twice_is_refused_as_a_duplicate() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_nameservers(["ns1.bücher.example", "ns2.example.net",
                           "NS1.XN--BCHER-KVA.EXAMPLE."])

    [error] = refused.value.errors
    assert (error.field, error.code) == ("nameservers.2", "duplicate")
    assert "nameservers.0" in error.message


def test_thirteen_nameservers_are_accepted_and_fourteen_are_too_many() -> None:
    hosts = [f"ns{number}.example.net" for number in range(14)]

    assert len(parse_nameservers(hosts[:13])) == 13
    with pytest.raises(ValidationFailed) as refused:
        parse_nameservers(hosts)
    assert [(e.field, e.code) for e in refused.value.errors] == [("nameservers", "too_many")]


def test_the_nameserver_limit_can_be_set_by_the_caller() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_nameservers(["ns1.example.net", "ns2.example.net", "ns3.example.net"],
                          max_count=2)

    assert [e.code for e in refused.value.errors] == ["too_many"]


@pytest.mark.parametrize("empty", [None, [], ()])
def test_no_nameservers_is_an_empty_list(empty: Any) -> None:
    assert parse_nameservers(empty) == ()


@pytest.mark.parametrize("value", ["ns1.example.net", {"host": "ns1.example.net"}, 13])
def test_nameservers_must_be_a_list(value: Any) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_nameservers(value)

    assert [(e.field, e.code) for e in refused.value.errors] == [("nameservers", "not_list")]


def test_nameserver_errors_use_the_given_field_name() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_nameservers(["ns1.example.net", ""], field="hosts")

    assert [(e.field, e.code) for e in refused.value.errors] == [("hosts.1", "required")]
