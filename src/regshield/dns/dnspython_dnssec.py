"""dnspython's DNSSEC modules, imported without cryptography's DSA deprecation warning.

`dns.dnssec` imports `dns.dnssecalgs`, which defines classes for the DSA algorithms (3 and 6,
which regshield refuses: `rules/ds.py`) by naming `cryptography`'s DSA key types. Since
cryptography 51 that naming warns (`CryptographyDeprecationWarning: DSA is deprecated ...`),
and the warning went to stderr at every start of `regshield`, `regshield serve` included.
Nothing regshield does reaches DSA, so exactly that warning, raised by dnspython's DSA module
while this module imports it, is ignored; every other warning stays as it was.

Import `dnssec` and `dnssecalgs` from here, never `dns.dnssec` directly.
"""

from __future__ import annotations

import warnings

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated",
                            category=CryptographyDeprecationWarning,
                            module=r"dns\.dnssecalgs\.dsa\Z")
    from dns import dnssec as dnssec
    from dns import dnssecalgs as dnssecalgs

__all__ = ["dnssec", "dnssecalgs"]
