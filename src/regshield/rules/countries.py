"""ISO 3166-1 alpha-2 country codes."""

from __future__ import annotations

import phonenumbers

# phonenumbers knows every assigned ISO 3166-1 code that has a telephone plan, plus a few
# telephone-only regions; the difference is spelled out here.
_TELEPHONE_ONLY = frozenset({"AC", "TA", "XK"})
_NO_TELEPHONE_PLAN = frozenset({"AQ", "BV", "GS", "HM", "PN", "TF", "UM"})

ISO_3166_ALPHA2: frozenset[str] = (
    frozenset(phonenumbers.SUPPORTED_REGIONS) - _TELEPHONE_ONLY
) | _NO_TELEPHONE_PLAN
