"""Schemathesis hooks for bench/fuzz.py: values that reach past the first validation.

Generated strings are almost never valid domain names, and an admin's writes name an account
that must exist, so without help nearly every write stops at 422 and the code behind it (the
flows, the EPP commands) is never run. These hooks offer, beside the generated body or path
parameters (kept as they are half of the time), the same with `name` set to one of a few domain
names under the sandbox registry's TLDs (so that what one request creates, another finds) and
`account` set to the run's account. Every other field stays generated, so a valid name arrives
with a fuzzed auth code, policy or contact field. Loaded with SCHEMATHESIS_HOOKS by fuzz.py,
which passes the account id in FUZZ_ACCOUNT.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

NAMES = ("fuzz-a.test", "fuzz-b.test", "fuzz-c.example", "www.fuzz-a.test")


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict) or not ({"name", "account"} & body.keys()):
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(NAMES).map(lambda name: realistic(body, name)))


@schemathesis.hook
def flatmap_path_parameters(context: Any, parameters: Any) -> st.SearchStrategy[Any]:
    if not isinstance(parameters, dict) or "name" not in parameters:
        return st.just(parameters)
    return st.one_of(st.just(parameters),
                     st.sampled_from(NAMES).map(lambda name: {**parameters, "name": name}))


def realistic(body: dict[str, Any], name: str) -> dict[str, Any]:
    changed = dict(body)
    if "name" in changed and isinstance(changed["name"], str):
        changed["name"] = name
    account = os.environ.get("FUZZ_ACCOUNT")
    if "account" in changed and account:
        changed["account"] = account
    return changed
