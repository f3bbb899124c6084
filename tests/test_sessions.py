"""Sessions are isolated: a client can act only on its own session's runs (ui/sessions.py)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.app_helpers import PANEL, REPO, running_app
from ui.sessions import COOKIE, REFUSED, SessionGuard

PRESET = REPO / "assets" / "poses" / "standing.json"
EVENTS = {"event-of-a": "a", "event-of-b": "b"}  # the fake queue's events and their sessions


async def _echo(request):
    return JSONResponse({"ok": True})


def _guarded_app() -> Starlette:
    routes = [Route(path, _echo, methods=["GET", "POST"]) for path in (
        "/", "/config", "/gradio_api/queue/join", "/gradio_api/queue/data", "/gradio_api/cancel",
        "/gradio_api/run/{name}", "/gradio_api/heartbeat/{session}", "/gradio_api/stream/{event}/close",
    )]  # fmt: skip
    return Starlette(routes=routes, middleware=[Middleware(SessionGuard, event_session=EVENTS.get)])


def _page_client(app: Starlette) -> TestClient:
    client = TestClient(app)
    assert client.get("/").status_code == 200 and client.cookies.get(COOKIE)  # the page hands out the cookie
    return client


def _without_cookie(app: Starlette, method: str, path: str, body: dict | None = None) -> int:
    """The status of one request from a client that sends no cookie (a fresh one each time)."""
    return TestClient(app).request(method, path, json=body).status_code


def test_a_session_is_bound_to_the_client_that_first_used_it():
    app = _guarded_app()
    owner, other = _page_client(app), _page_client(app)  # one server, two clients with their own cookies
    assert owner.post("/gradio_api/queue/join", json={"session_hash": "a", "fn_index": 5}).status_code == 200
    assert owner.get("/gradio_api/queue/data", params={"session_hash": "a"}).status_code == 200
    for method, path, body in (
        ("POST", "/gradio_api/run/cancel", {"session_hash": "a", "data": []}),
        ("POST", "/gradio_api/queue/join", {"session_hash": "a", "fn_index": 6}),
        ("POST", "/gradio_api/cancel", {"session_hash": "a", "fn_index": 5, "event_id": "x"}),
        ("GET", "/gradio_api/queue/data?session_hash=a", None),
        ("GET", "/gradio_api/heartbeat/a", None),
    ):
        refused = other.request(method, path, json=body)
        assert (refused.status_code, refused.json()) == (403, {"error": REFUSED})
        assert _without_cookie(app, method, path, body) == 403


def test_an_event_of_another_session_is_refused_even_with_ones_own_session():
    app = _guarded_app()
    owner, other = _page_client(app), _page_client(app)
    owner.post("/gradio_api/queue/join", json={"session_hash": "a", "fn_index": 5})
    other.post("/gradio_api/queue/join", json={"session_hash": "b", "fn_index": 5})
    steal = {"session_hash": "b", "fn_index": 5, "event_id": "event-of-a"}
    assert other.post("/gradio_api/cancel", json=steal).status_code == 403
    assert other.post("/gradio_api/stream/event-of-a/close").status_code == 403
    own = {"session_hash": "b", "fn_index": 5, "event_id": "event-of-b"}
    assert other.post("/gradio_api/cancel", json=own).status_code == 200
    assert other.post("/gradio_api/stream/event-of-b/close").status_code == 200


def test_a_client_without_the_cookie_opens_sessions_anyone_may_use():
    """Cookies blocked: the app keeps working for that client, as unprotected as Gradio's own sessions."""
    app = _guarded_app()
    assert (
        _without_cookie(app, "POST", "/gradio_api/queue/join", {"session_hash": "open", "fn_index": 5}) == 200
    )
    assert _without_cookie(app, "GET", "/gradio_api/queue/data?session_hash=open") == 200
    assert _page_client(app).post("/gradio_api/run/cancel", json={"session_hash": "open"}).status_code == 200


def test_the_mcp_servers_loopback_calls_bind_nothing_and_others_still_do():
    """Gradio's MCP server runs every caller's tools through one loopback session, with each caller's cookie:
    its requests (from this machine, `x-gradio-user: mcp`) neither bind a session nor are refused."""
    app, mcp = _guarded_app(), {"x-gradio-user": "mcp"}
    callers = [TestClient(app, client=("127.0.0.1", 40000), cookies={COOKIE: name}) for name in "AB"]
    join = {"session_hash": "mcp", "fn_index": 5}
    for caller in callers:
        assert caller.post("/gradio_api/queue/join", json=join, headers=mcp).status_code == 200
    page = _page_client(app)
    assert page.post("/gradio_api/queue/join", json={"session_hash": "p", "fn_index": 5}).status_code == 200
    remote = TestClient(app, client=("203.0.113.9", 40000), cookies={COOKIE: "C"})
    stolen = remote.post("/gradio_api/queue/join", json={"session_hash": "p", "fn_index": 5}, headers=mcp)
    assert stolen.status_code == 403


# ----- the real app, two clients --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(tmp_path_factory.mktemp("sessions")) as url:
        yield url


def _fn_index(config: dict, api_name: str) -> int:
    return next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)


class PageSession:
    """A browser page's session over raw HTTP (the page's own events are private to gradio_client): its own
    cookie, as loading the page hands it out, and its own session hash."""

    def __init__(self, server: str) -> None:
        self.http = httpx.Client(base_url=server + "gradio_api/", timeout=60)
        self.http.get(server)
        self.session = uuid.uuid4().hex[:11]
        self.messages: queue.Queue[dict] = queue.Queue()
        self.listener: threading.Thread | None = None

    def _listen(self) -> None:
        """The session's message stream; Gradio ends it when the session has no event left, so each join
        opens it again if it has ended."""
        params = {"session_hash": self.session}
        with self.http.stream("GET", "queue/data", params=params, timeout=None) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    self.messages.put(json.loads(line[5:]))

    def upload(self, path: Path) -> dict:
        with path.open("rb") as file:
            [uploaded] = self.http.post("upload", files={"files": (path.name, file)}).json()
        return {"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def join(self, fn_index: int, data: list) -> str:
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session, "trigger_id": None}
        response = self.http.post("queue/join", json=body)
        assert response.status_code == 200, response.text
        if self.listener is None or not self.listener.is_alive():
            self.listener = threading.Thread(target=self._listen, daemon=True)
            self.listener.start()
        return response.json()["event_id"]

    def wait_for(self, event_id: str, kind: str) -> dict:
        while True:
            message = self.messages.get(timeout=120)
            if message.get("event_id") == event_id and message["msg"] == kind:
                return message


def _generation(page: PageSession, fn_index: int, steps: int) -> str:
    """The page's Generate event in `page`'s session, once it denoises; its event id."""
    # Generate's inputs in the page's order: the upload, draw mode, people, the finished gallery, the editor's
    # value and what was loaded into it (the states: the server keeps them), then the panel.
    data = [
        page.upload(PRESET),
        "body-pose",
        None,
        None,
        None,
        None,
        *{**PANEL, "num_inference_steps": steps}.values(),
    ]
    event_id = page.join(fn_index, data)
    page.wait_for(event_id, "progress")  # denoising: the run's cancel flag is registered
    return event_id


@pytest.mark.server
def test_another_client_cannot_cancel_a_run_by_any_route(server: str):
    config = httpx.get(server + "config").json()
    generate, cancel, cancel_sweep = (_fn_index(config, name) for name in ("run", "cancel", "cancel_1"))
    victim = PageSession(server)
    event = _generation(victim, generate, steps=24)
    session = victim.session
    attacker = httpx.Client(base_url=server + "gradio_api/", timeout=30)
    attacker.get(server + "config")  # the attacker's own cookie, as a page or gradio_client gets it
    assert attacker.cookies.get(COOKIE)
    attempts = [
        ("POST", "cancel", {"session_hash": session, "fn_index": generate, "event_id": event}),
        ("POST", "cancel", {"session_hash": "attacker", "fn_index": generate, "event_id": event}),
        ("POST", "run/cancel", {"session_hash": session, "fn_index": cancel, "data": []}),
        ("POST", "run/cancel_1", {"session_hash": session, "fn_index": cancel_sweep, "data": []}),
        ("POST", "queue/join", {"session_hash": session, "fn_index": cancel, "data": []}),
        ("POST", "call/cancel", {"session_hash": session, "data": []}),
        ("POST", f"stream/{event}/close", None),
        ("GET", f"queue/data?session_hash={session}", None),
        ("GET", f"heartbeat/{session}", None),
    ]
    for client in (
        attacker,
        httpx.Client(base_url=server + "gradio_api/", timeout=30),
    ):  # with and without a cookie
        for method, path, body in attempts:
            response = client.request(method, path, json=body)
            assert (response.status_code, response.json()) == (403, {"error": REFUSED}), path
    # Gradio's /reset is a no-op: it stops nothing.
    assert attacker.post("reset", json={"event_id": event}).status_code == 200
    done = victim.wait_for(event, "process_completed")
    assert done["success"] and "24 steps" in json.dumps(done["output"]), "the victim's run was stopped"

    # Its own page can still cancel it, through the Cancel event.
    event = _generation(victim, generate, steps=100)
    body = {"session_hash": session, "fn_index": cancel, "data": []}
    assert victim.http.post("run/cancel", json=body).status_code == 200
    done = victim.wait_for(event, "process_completed")
    assert "100 steps" not in json.dumps(done["output"]), "its own Cancel did not stop the run"
