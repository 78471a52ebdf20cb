"""Every field of every request body has its exact JSON type: a value of another type is a 422
naming the field, never a 500. The walk enumerates the real application's routes and their
body models (`app.routes`), so a route or a field added later is covered the day it lands."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import pytest
from conftest import World
from domains.conftest import holder, registry
from pydantic import BaseModel, ValidationError

from api.test_read_only_credentials import (
    Estate,
    _body_model,
    estate,
    generated_body,
    write_routes,
)
from regshield.errors import ValidationFailed
from regshield.flows.zones import ZoneCreate
from regshield.services import Services

__all__ = ["estate", "holder", "registry"]

HUGE = "x" * 100_000
# A JSON value of each kind, and the kinds a list field is most often fed by mistake.
PROBES: dict[str, Any] = {"object": {}, "array": [], "number": 1, "boolean": True,
                          "null": None, "huge string": HUGE, "array of object": [{}],
                          "array of null": [None], "array of huge string": [HUGE]}
# Fields made to carry large text (bounded by their route's own body limit).
LARGE_TEXT = {("ZoneImportIn", "zone_file")}


def refuses(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return True
    return False


def body_models(services: Services) -> dict[str, type[BaseModel]]:
    models = {}
    for write in write_routes(services):
        model = _body_model(write.route)
        if model is not None:
            models[model.__name__] = model
    return models


def test_every_string_field_of_every_request_body_is_bounded(services: Services) -> None:
    models = body_models(services)
    assert len(models) > 20, "the walk found too few body models"
    unbounded = [f"{name}.{field}" for name, model in models.items()
                 for field in model.model_fields
                 if (name, field) not in LARGE_TEXT and not refuses(model, {field: HUGE})]
    assert not unbounded, f"these fields take a string of any length: {unbounded}"


async def test_no_request_field_of_a_wrong_json_type_answers_500(
        api: httpx.AsyncClient, services: Services, estate: Estate) -> None:
    failures: list[str] = []
    probed = 0
    for write in write_routes(services):
        model = _body_model(write.route)
        if model is None:
            continue
        valid = estate.bodies.get(model.__name__, functools.partial(generated_body, model))
        for field, info in model.model_fields.items():
            key = info.alias or field
            for label, probe in PROBES.items():
                body = {**valid(), key: probe}
                answer = await api.request(write.method, estate.path(write),
                                           headers=estate.holder.headers, json=body)
                probed += 1
                where = (f"{write.method} {write.path} {model.__name__}.{key} = {label}: "
                         f"{answer.status_code} {answer.text[:200]}")
                if answer.status_code >= 500:
                    failures.append(where)
                elif refuses(model, body):
                    named = {e["field"].split(".")[0] for e in answer.json().get("errors", [])}
                    if answer.status_code != 422 or key not in named:
                        failures.append(f"{where} (expected 422 naming {key})")
    assert probed > 300, "the walk probed too few fields"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("policy", [{}, [], 1, True, "x" * 1000])
async def test_a_zone_policy_that_is_not_a_policy_name_is_refused(
        api: httpx.AsyncClient, estate: Estate, policy: Any) -> None:
    answer = await api.post("/api/v1/zones", headers=estate.holder.headers,
                            json={"name": "policy.example", "policy": policy})

    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["policy"]


@pytest.mark.parametrize("field", ["policy", "denial", "serial_scheme"])
@pytest.mark.parametrize("value", [{"kind": "nsec"}, ["nsec"], 1])
async def test_a_flow_called_without_the_schema_refuses_a_value_of_another_type(
        world: World, field: str, value: Any) -> None:
    """The CLI calls flows directly: a flow names the field instead of failing on the value."""
    account = await world.account()

    with pytest.raises(ValidationFailed) as refused:
        await world.flow(ZoneCreate("flow.example", account=account, **{field: value}))

    assert [e.field for e in refused.value.errors] == [field]
