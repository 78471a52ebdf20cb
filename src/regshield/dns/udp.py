"""The embedded server's UDP loop in C, when it was built.

A query answered from the server's cache costs a few microseconds of Python, and reading and
sending it one system call each (`recvfrom`, `sendto`) costs as much again: together about
four times what Knot DNS spends. `regshield.dns._udp` (src/regshield/dns/_udp.c) reads and
sends datagrams in batches (`recvmmsg`, `sendmmsg`), decides RRL there, and answers every
question the Python server has answered before from a dict the server fills. In a signed
zone it also denies names never asked before (the random-subdomain flood), from the zone's
sorted NSEC3 hashes or NSEC owners and parts of responses Python rendered
(`_udp.Nsec3Denial`, `_udp.NsecDenial`). Whatever
it cannot answer exactly as the Python server would goes back to Python with its RRL verdict.

`native` is that module, or None where no C compiler built it: the server then answers every
datagram in Python, with the same rules and the same responses (as it does with
`DnsServer(native_loop=False)`, which the tests and `bench/serve.py --python-loop` use to
compare the two).
"""

from __future__ import annotations

try:
    from regshield.dns import _udp as native
except ImportError:  # pragma: no cover - installed without a C compiler
    native = None  # type: ignore[assignment]

__all__ = ["native"]
