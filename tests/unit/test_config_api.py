"""The configuration through the admin API (ari_app/admin/config_http.py, ari_app/config_reload.py): every change
is validated by loading the whole configuration, applied at once, or undone with the error located."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin.config_http import add_routes
from ari_app.config_reload import ConfigReloader
from tests.unit.admin_fixtures import reloader_for_docs

FLOW = """\
name: hello
start: greet
nodes:
  greet:
    play: [{sound: hello-world}]
    next: out
  out: {route: default}
"""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, ConfigReloader]]:
    reloader = reloader_for_docs(tmp_path)
    app = web.Application()
    add_routes(app, reloader)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, reloader
    finally:
        await client.close()


async def put(client: TestClient, path: str, body: Any) -> tuple[int, Any]:
    response = await client.put(path, json=body) if not isinstance(body, str) else await client.put(path, data=body)
    return response.status, await response.json()


async def test_a_destination_and_a_campaign_made_through_the_api_apply_at_once(api) -> None:
    client, reloader = api
    status, body = await put(client, "/api/v1/config/destinations/night", {"host": "127.0.0.1", "port": 5090})
    assert status == 200, body
    status, body = await put(client, "/api/v1/config/campaigns/summer", {
        "destination": "night", "ring_timeout": 15, "numbers": ["+1 555 010 0777"],
        "routing": {"strategy": "priority", "destinations": ["night", "desk"]}})
    assert status == 200 and body["applied"]["campaigns"] == 2, body
    settings = reloader.settings
    assert settings.numbers["15550100777"].campaign == "summer"
    assert [t.name for t in settings.campaigns["summer"].routing.destinations] == ["night", "desk"]
    assert len(reloader.service.applied) == 2  # type: ignore[attr-defined]
    listed = await (await client.get("/api/v1/config/campaigns")).json()
    assert {i["name"]: i["source"] for i in listed["items"]} == {"spring": "file", "summer": "api"}
    one = await (await client.get("/api/v1/config/campaigns/summer")).json()
    assert one["settings"]["ring_timeout"] == 15


async def test_a_change_that_does_not_load_is_undone_with_its_file_line_and_key(api) -> None:
    client, reloader = api
    before = reloader.settings
    status, body = await put(client, "/api/v1/config/campaigns/broken", {"destination": "nowhere"})
    assert status == 400
    fragment = reloader.fragment_path("campaigns", "broken")
    assert f"{fragment}:" in body["error"] and "destination" in body["error"] and "nowhere" in body["error"]
    assert not fragment.exists() and reloader.settings is before


async def test_resources_of_the_operators_file_are_not_rewritten(api) -> None:
    client, _reloader = api
    status, body = await put(client, "/api/v1/config/campaigns/spring", {"destination": "desk"})
    assert status == 409 and "ringpool.yaml" in body["error"]
    response = await client.delete("/api/v1/config/destinations/desk")
    assert response.status == 409


async def test_deleting_what_a_campaign_uses_is_refused_and_kept(api) -> None:
    client, reloader = api
    await put(client, "/api/v1/config/destinations/night", {"host": "127.0.0.1"})
    await put(client, "/api/v1/config/campaigns/summer", {"destination": "night"})
    response = await client.delete("/api/v1/config/destinations/night")
    assert response.status == 400 and "night" in (await response.json())["error"]
    assert reloader.fragment_path("destinations", "night").exists() and "night" in reloader.settings.destinations
    assert (await client.delete("/api/v1/config/campaigns/summer")).status == 200
    assert (await client.delete("/api/v1/config/destinations/night")).status == 200
    assert "night" not in reloader.settings.destinations
    assert (await client.delete("/api/v1/config/destinations/night")).status == 404


async def test_numbers_import_reports_each_bad_row_and_imports_the_others(api) -> None:
    client, reloader = api
    csv_text = ("number,campaign\n"
                "+1 555 010 0801,spring\n"
                "not a number,spring\n"
                "+1 555 010 0802,autumn\n"
                "5550100001,spring\n"          # already a tracking number
                "+1 555 010 0801,spring\n"     # twice in the file
                "(555) 010-0803,spring\n")
    response = await client.post("/api/v1/numbers/import", data=csv_text, headers={"Content-Type": "text/csv"})
    body = await response.json()
    assert response.status == 200 and body["imported"] == 2, body
    assert [(e["row"], e["error"].split(":")[0]) for e in body["errors"]] == [
        (2, "number"), (3, "campaign"), (4, "number"), (5, "number")]
    assert "also on row 1" in body["errors"][3]["error"]
    assert {"15550100801", "5550100803"} <= set(reloader.settings.numbers)
    nothing = await client.post("/api/v1/numbers/import", data="number,campaign\nx,y\n")
    assert nothing.status == 400 and (await nothing.json())["errors"][0]["row"] == 1
    assert (await client.post("/api/v1/numbers/import", data="phone\n1\n")).status == 400


async def test_flows_are_validated_before_they_go_live(api) -> None:
    client, reloader = api
    status, body = await put(client, "/api/v1/flows/hello", FLOW)
    assert status == 200 and "hello" in reloader.settings.flows, body
    flows = await (await client.get("/api/v1/flows")).json()
    assert flows["flows"][0] == {"name": "hello", "source": "api", "start": "greet", "nodes": 2, "description": ""}
    assert (await (await client.get("/api/v1/flows/hello")).text()) == FLOW
    status, body = await put(client, "/api/v1/flows/hello", FLOW.replace("next: out", "next: nowhere"))
    assert status == 400 and "hello.yaml:6: nodes.greet.next" in body["error"], body
    assert (await (await client.get("/api/v1/flows/hello")).text()) == FLOW  # the live flow is unchanged
    status, body = await put(client, "/api/v1/config/campaigns/summer", {"destination": "desk", "flow": "hello"})
    assert status == 200, body
    response = await client.delete("/api/v1/flows/hello")  # a campaign uses it
    assert response.status == 400 and "hello" in (await response.json())["error"]


async def test_reload_reads_the_file_again_and_refuses_what_needs_a_restart(api) -> None:
    client, reloader = api
    text = reloader.path.read_text()
    reloader.path.write_text(text.replace("{name: desk, host: 127.0.0.1}", "{name: desk, host: 127.0.0.2}"))
    response = await client.post("/api/v1/config/reload")
    assert response.status == 200 and reloader.settings.destinations["desk"].host == "127.0.0.2"
    reloader.path.write_text(text.replace("state_dir: var", "state_dir: elsewhere"))
    response = await client.post("/api/v1/config/reload")
    assert response.status == 409 and "state_dir" in (await response.json())["error"]
    reloader.path.write_text(text.replace("campaigns:", "campaigns: [oops"))
    response = await client.post("/api/v1/config/reload")
    assert response.status == 400 and "YAML" in (await response.json())["error"]
    assert reloader.settings.destinations["desk"].host == "127.0.0.2"  # still the last good one


async def test_unknown_section_and_bad_name(api) -> None:
    client, _reloader = api
    assert (await client.get("/api/v1/config/trunks")).status == 404
    assert (await client.put("/api/v1/config/campaigns/Bad Name", json={})).status == 400
    status, body = await put(client, "/api/v1/config/campaigns/summer", {"name": "autumn", "destination": "desk"})
    assert status == 400 and "name" in body["error"]


async def test_secrets_are_not_shown(api) -> None:
    client, _reloader = api
    status, body = await put(client, "/api/v1/config/webhooks/crm", {"url": "https://crm.example/hook",
                                                                     "secret": "s3cret-value-0123456789abcdef"})
    assert status == 200, body
    shown = await (await client.get("/api/v1/config/webhooks/crm")).json()
    assert shown["settings"]["secret"] == "[redacted]" and "s3cret" not in str(shown)


async def test_an_imported_number_can_be_listed_and_removed(api) -> None:
    client, reloader = api
    response = await client.post("/api/v1/numbers/import", data="number,campaign\n15550100901,spring\n"
                                                                 "15550100902,spring\n")
    assert response.status == 200
    listed = await (await client.get("/api/v1/numbers", params={"campaign": "spring"})).json()
    assert {"15550100901", "15550100902", "5550100001"} <= {n["number"] for n in listed["numbers"]}
    assert (await client.delete("/api/v1/numbers/+15550100901")).status == 200
    assert "15550100901" not in reloader.settings.numbers and "15550100902" in reloader.settings.numbers
    assert (await client.delete("/api/v1/numbers/15550100902")).status == 200
    assert not list(reloader.fragments.glob("numbers--*.yaml"))  # the emptied batch is gone
    response = await client.delete("/api/v1/numbers/5550100001")  # the file's own
    assert response.status == 409 and "ringpool.yaml" in (await response.json())["error"]
    assert (await client.delete("/api/v1/numbers/15550199999")).status == 404
