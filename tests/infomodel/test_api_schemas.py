"""GET /v1/schemas on a tiny app whose state carries only the InfoModel."""

import asyncio
import types

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from lxml import etree

from hub.api.schemas import router
from hub.infomodel import InfoModel


class Client:
    """A synchronous face on httpx's ASGI transport: the app runs in-process, no socket."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
                return await c.get(path, headers=headers)

        return asyncio.run(go())


@pytest.fixture(scope="module")
def client(model: InfoModel) -> Client:
    app = FastAPI()
    app.state.hub = types.SimpleNamespace(infomodel=model)
    app.include_router(router)
    return Client(app)


def test_list_gives_every_type_with_versions_and_links(client: Client, model: InfoModel) -> None:
    r = client.get("/v1/schemas")
    assert r.status_code == 200
    items = {s["type"]: s for s in r.json()["schemas"]}
    assert set(items) == {t.name for t in model.types()}
    pip = items["pip"]
    assert [v["version"] for v in pip["versions"]] == ["1.0", "1.1"]
    assert pip["versions"][0]["deprecation"] == "2028-06-30"
    assert pip["versions"][1]["links"] == {
        "xsd": "/v1/schemas/pip/1.1",
        "jsonSchema": "/v1/schemas/pip/1.1?format=json",
    }
    assert items["monitoring"]["subjectField"] is None
    assert items["ontheemde-registratie"]["receivers"] == ["wvg"]


def test_xsd_by_default_and_it_validates_an_example(client: Client, model: InfoModel) -> None:
    r = client.get("/v1/schemas/klantprofiel/1.0")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    schema = etree.XMLSchema(etree.fromstring(r.content))
    example = model.get("klantprofiel", "1.0").file.parent / "examples" / "klantprofiel" / "valid-statushouder.xml"
    assert schema.validate(etree.parse(str(example)))


@pytest.mark.parametrize(("headers", "query"), [({"Accept": "application/schema+json"}, ""), ({}, "?format=json")])
def test_json_schema_by_accept_header_or_query(client: Client, headers: dict[str, str], query: str) -> None:
    r = client.get(f"/v1/schemas/pip/1.1{query}", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/schema+json")
    body = r.json()
    jsonschema.Draft202012Validator.check_schema(body)
    assert "ontzorging" in body["properties"]


def test_format_xsd_wins_over_accept(client: Client) -> None:
    r = client.get("/v1/schemas/pip/1.0?format=xsd", headers={"Accept": "application/schema+json"})
    assert r.headers["content-type"].startswith("application/xml")


def test_etag_gives_304_on_a_repeat(client: Client) -> None:
    first = client.get("/v1/schemas/pip/1.0")
    again = client.get("/v1/schemas/pip/1.0", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/v1/schemas/pip/9.9", "/v1/schemas/pipp/1.0"])
def test_unknown_type_or_version_is_problem_404(client: Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 404
    assert body["code"] == "unknown_message_type"
    assert body["invalidParams"]


def test_unknown_format_is_refused(client: Client) -> None:
    assert client.get("/v1/schemas/pip/1.0?format=yaml").status_code == 422
