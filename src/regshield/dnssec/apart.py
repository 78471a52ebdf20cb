"""A large zone's first signing in a process of its own, not in the serving process.

Signing a zone of 100,000 records takes the incremental signer most of a minute of Python,
and a worker thread beside the event loop would hold the serving process's GIL all that time
(docs/performance.md, "The event loop while a large zone is imported and signed").
`sign_whole` sends the zone's unsigned RRsets, in the form the store keeps them in
(dns/wireform.py), and its signing keys, as PKCS#8 DER down the pipe of a process this one
started (never written anywhere), to that process; it builds the `SignedZone` there, by the
same rules and with the same per-RRset expiry jitter as here, and sends back every signed
RRset in the same form. This process reads them and takes them into a `SignedZone` without
signing (`SignedZone.restore`), a few seconds for 100,000 records. A small zone is signed
here (the hand-over costs more than it saves), and so is a zone whose keys are held in a
PKCS#11 token: they cannot leave it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from typing import Literal

import dns.rrset

from regshield.dns import wireform
from regshield.dnssec.incremental import SignedZone
from regshield.dnssec.keys import AnyKey, SigningKey, load_private_key_der, private_key_der

SIGN_APART_AT = 2_000
"""RRsets from which a zone is signed in the signing process rather than here."""
PARENT_CHECK_SECONDS = 0.5


def signing_pool() -> ProcessPoolExecutor:
    """One signing process, started afresh (not forked from a process that serves). It exits
    when the process that started it is gone, even killed: its queue would never tell it."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_outlive_nobody, initargs=(os.getpid(),))


def _outlive_nobody(parent: int) -> None:
    """In the signing process: exit once `parent` is no longer its parent."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def sign_whole(rrsets: Sequence[dns.rrset.RRset], keys: Sequence[AnyKey], now: datetime,
               nsec: Literal["nsec", "nsec3"], pool: ProcessPoolExecutor | None) -> SignedZone:
    """The zone signed as `SignedZone(rrsets, keys, now, nsec)` signs it: in `pool`'s
    process when the zone is large and its keys can leave this process, here otherwise.
    Raises what `SignedZone` raises, and `BrokenProcessPool` when the signing process died."""
    signing_keys = [key for key in keys if isinstance(key, SigningKey)]
    if pool is None or len(rrsets) < SIGN_APART_AT or len(signing_keys) != len(keys):
        return SignedZone(rrsets, keys, now, nsec)
    sent = [(private_key_der(key), key.flags) for key in signing_keys]
    signed = pool.submit(_sign, wireform.encode(rrsets), sent, now, nsec).result()
    return SignedZone.restore(wireform.decode(signed), keys, nsec)


def _sign(unsigned: bytes, keys: list[tuple[bytes, int]], now: datetime,
          nsec: Literal["nsec", "nsec3"]) -> bytes:
    """In the signing process: the signed zone's RRsets, in the stored form."""
    zone = SignedZone(wireform.decode(unsigned),
                      [load_private_key_der(der, flags) for der, flags in keys], now, nsec)
    return wireform.encode(zone.rrsets())
