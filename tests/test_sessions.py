"""Sessions are isolated: a client can act only on its own session's runs (ui/sessions.py)."""

from __future__ import annotations

import time

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.app_helpers import PANEL, REPO, running_app
from ui.sessions import COOKIE, REFUSED, SessionGuard

PRESET = REPO / "assets" / "poses" / "standing.json"
RUNNING = (Status.PROCESSING, Status.PROGRESS, Status.ITERATING)  # gradio_client codes of a started job
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


# ----- the real app, two clients --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(tmp_path_factory.mktemp("sessions")) as url:
        yield url


def _fn_index(config: dict, api_name: str) -> int:
    return next(dep["id"] for dep in config["dependencies"] if dep.get("api_name") == api_name)


def _submit_generation(client: Client, fn_index: int, steps: int):
    """The page's Generate event (not the public API), in `client`'s session."""
    arguments = {**PANEL, "num_inference_steps": steps}
    job = client.submit(handle_file(str(PRESET)), *arguments.values(), fn_index=fn_index)
    deadline = time.monotonic() + 60
    while job.status().code not in RUNNING or job.communicator.event_id is None:
        assert time.monotonic() < deadline, "the generation never started"
        time.sleep(0.05)
    return job


@pytest.mark.server
def test_another_client_cannot_cancel_a_run_by_any_route(server: str):
    victim = Client(server, verbose=False)
    config = httpx.get(server + "config").json()
    generate, cancel, cancel_sweep = (
        _fn_index(config, name) for name in ("generate_stream", "cancel", "cancel_1")
    )
    job = _submit_generation(victim, generate, steps=24)
    session, event = victim.session_hash, job.communicator.event_id
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
    *_, status = job.result(timeout=120)
    assert "24 steps" in status, "the victim's run was stopped"

    # Its own client can still cancel it, through the page's Cancel event.
    job = _submit_generation(victim, generate, steps=100)
    own = httpx.Client(base_url=server + "gradio_api/", cookies=victim.cookies, timeout=30)
    assert (
        own.post("run/cancel", json={"session_hash": session, "fn_index": cancel, "data": []}).status_code
        == 200
    )
    *_, status = job.result(timeout=120)
    assert "100 steps" not in str(status), "its own Cancel did not stop the run"
