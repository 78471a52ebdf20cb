"""A client generated from the OpenAPI document works against the served API.

At test time the document is taken from a real `regshield serve` (/api/v1/openapi.json), a
typed Python client (pydantic models, one function per operation) is generated from it with
openapi-python-generator into a temporary directory, and the client logs in, opens an account,
creates a contact and a hosted zone in it, and reads the three back. The generated models
validate every answer, so a field the document promises and the server drops, renames or
retypes fails here; a request model that no longer matches what the server accepts fails too.
Nothing generated is committed.
"""

from __future__ import annotations

import importlib
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_python_generator.language_converters.python.common import normalize_symbol
from openapi_python_generator.language_converters.python.jinja_config import (
    HTTPX_TEMPLATE,
    TEMPLATE_PATH,
)

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import fuzz  # noqa: E402  (bench/fuzz.py: the served instance and the CLI helpers)

API = "/api/v1"
PACKAGE = "regshield_generated_client"


def generator_ready(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the generator can read it: it does not support a request body that may
    be null (`anyOf: [schema, null]`, an optional body), so such a body is given as its schema
    alone. Nothing else is changed."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                choices = media.get("schema", {}).get("anyOf")
                if choices and {"type": "null"} in choices and len(choices) == 2:
                    media["schema"] = next(c for c in choices if c != {"type": "null"})
    return document


# Two things the generator's own request template gets wrong, whatever the document says, are
# mended in a copy of it given as a custom template (its --custom-template-path): an optional
# header left unset (X-OTP) goes out as None, which httpx refuses, so unset headers are dropped
# as unset query parameters already are; and a body is sent with every optional field that was
# not set as null (`"dnssec": null` where the document says a boolean with a default), so the
# body carries the fields set, as a hand-written client would send it.
HEADERS_END = "    }\n    query_params : Dict[str,Any] = {"
DROP_UNSET_HEADERS = "    headers = {k: v for (k, v) in headers.items() if v is not None}\n"
BODY = "json = {{ body_param }}"
BODY_SET_FIELDS = ("json = {{ body_param | replace('.dict()', "
                   "\".model_dump(mode='json', exclude_unset=True)\") | safe }}")


def templates(directory: Path) -> Path:
    template = (TEMPLATE_PATH / HTTPX_TEMPLATE).read_text()
    assert template.count(HEADERS_END) == 1 and template.count(BODY) == 1, (
        "the generator's httpx template has changed")
    template = template.replace(HEADERS_END, "    }\n" + DROP_UNSET_HEADERS
                                + HEADERS_END.removeprefix("    }\n"))
    directory.mkdir()
    (directory / HTTPX_TEMPLATE).write_text(template.replace(BODY, BODY_SET_FIELDS))
    return directory


class Generated:
    """The generated package, and its functions looked up by method and path through the
    document's operationId (as the generator names them)."""

    def __init__(self, package: ModuleType, document: dict[str, Any], base: str) -> None:
        self.package, self.document = package, document
        self.models = importlib.import_module(f"{PACKAGE}.models")
        config = importlib.import_module(f"{PACKAGE}.api_config")
        self.config = config.APIConfig(base_path=base)
        self.http_error: type[Exception] = config.HTTPException
        self.services = [importlib.import_module(f"{PACKAGE}.services.{path.stem}")
                         for path in Path(package.__file__ or "").parent.glob("services/*.py")
                         if not path.stem.startswith(("async_", "__"))]

    def operation(self, method: str, path: str) -> Callable[..., Any]:
        name = normalize_symbol(self.document["paths"][API + path][method]["operationId"])
        found = [getattr(m, name) for m in self.services if hasattr(m, name)]
        assert len(found) == 1, f"{method} {path}: {name} generated {len(found)} times"
        return found[0]

    def call(self, method: str, path: str, **arguments: Any) -> Any:
        return self.operation(method, path)(api_config_override=self.config, **arguments)


def import_referenced_models(models: Path) -> None:
    """The generator imports the models a property names directly, but not one named inside
    a list of alternatives (`ds: List[Union[DsRecordIn, str]]`): each model module gets an
    import of every other model it names, as the generator does for the others."""
    names = {path.stem for path in models.glob("*.py") if not path.stem.startswith("_")}
    for path in models.glob("*.py"):
        text = path.read_text()
        missing = sorted(name for name in names - {path.stem}
                         if re.search(rf"\b{name}\b", text)
                         and f"from .{name} import" not in text)
        if missing:
            path.write_text("".join(f"from .{name} import *\n" for name in missing) + text)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    with fuzz.served(tmp_path / "home", tmp_path / "serve.log") as (base, port):
        yield base, f"http://127.0.0.1:{port}"


@pytest.fixture
def generated(served: tuple[list[str], str], tmp_path: Path) -> Iterator[Generated]:
    _, url = served
    document = httpx.get(f"{url}{API}/openapi.json", timeout=30).raise_for_status().json()
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps(generator_ready(json.loads(json.dumps(document)))))
    out = tmp_path / "generated"
    out.mkdir()
    generator = Path(sys.executable).with_name("openapi-python-generator")
    done = subprocess.run([str(generator), "--formatter", "none", "--custom-template-path",
                           str(templates(tmp_path / "templates")), str(source),
                           str(out / PACKAGE)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    import_referenced_models(out / PACKAGE / "models")
    sys.path.insert(0, str(out))
    try:
        yield Generated(importlib.import_module(PACKAGE), document, url)
    finally:
        sys.path.remove(str(out))
        for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[module]


def test_generated_client_creates_an_account_contact_and_zone_and_reads_them_back(
        served: tuple[list[str], str], generated: Generated) -> None:
    base, _ = served
    password = secrets.token_urlsafe(18)
    fuzz.cli(base, "user", "create", "staff@client.example", "--role", "admin",
             "--password-stdin", stdin=password + "\n")
    models, client = generated.models, generated

    login = client.call("post", "/auth/login",
                        data=models.LoginIn(email="staff@client.example", password=password))
    assert isinstance(login, models.TokenOut)
    client.config.set_access_token(login.token)

    account = client.call("post", "/accounts", data=models.AccountIn(name="Typed Client"))
    assert isinstance(account, models.AccountOut)
    assert account.name == "Typed Client"

    contact = client.call("post", "/contacts", data=models.ContactIn(
        name="Jane Example", organization="Example GmbH", email="jane@example.net",
        phone="+49 30 12345678", street=["Invalidenstrasse 116"], city="Berlin",
        postal_code="10115", country="de", account=account.account_id))
    assert isinstance(contact, models.ContactOut)

    zone = client.call("post", "/zones", data=models.ZoneIn(
        name="typed-client.example", account=account.account_id))
    assert isinstance(zone, models.ZoneOut)

    read_account = client.call("get", "/accounts/{account_id}", account_id=account.account_id)
    assert read_account == account
    read_contact = client.call("get", "/contacts/{handle}", handle=contact.handle)
    assert isinstance(read_contact, models.ContactOut)
    assert (read_contact.handle, read_contact.account, read_contact.email, read_contact.street,
            read_contact.country) == (contact.handle, account.account_id, "jane@example.net",
                                      ["Invalidenstrasse 116"], contact.country)
    read_zone = client.call("get", "/zones/{name}", name="typed-client.example")
    assert isinstance(read_zone, models.ZoneOut)
    assert (read_zone.name, read_zone.account, read_zone.dnssec) == (
        "typed-client.example.", account.account_id, zone.dnssec)

    # An error answer reaches the caller as the client's error, with its status.
    with pytest.raises(generated.http_error) as missing:
        client.call("get", "/contacts/{handle}", handle="RS-ZZZZZZZZZZ")
    assert getattr(missing.value, "status_code", None) == 404
