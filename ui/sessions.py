"""Sessions belong to the client that opened them.

Gradio names a session only by the `session_hash` its client picks, and every route that acts on a session
trusts it: joining the queue, reading the session's messages, the Cancel events, Gradio's own /cancel. Knowing
another person's hash was enough to cancel their run. `SessionGuard` binds each session hash, the first time
a request uses it, to a random secret the server hands out in an HTTP-only cookie, and refuses (403) any
later request naming that session, or an event of it, without the same secret. Browsers and gradio_client
(which keeps the cookies of its first /config request) send the cookie on every request by themselves.

A client that never sends the cookie (cookies blocked, or a raw HTTP script that drops them) opens sessions
bound to no secret; those stay as open as Gradio's own, so such clients keep working but are not protected.
So does Gradio's MCP server, which runs every caller's tool calls through one loopback gradio_client session
while passing on each caller's own headers, cookie included: its requests (from this machine, marked
`x-gradio-user: mcp`) bind nothing. MCP tool calls are API calls, which no page Cancel can reach anyway.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "pose_studio_client"
API_PREFIX = "/gradio_api"
SESSIONS_REMEMBERED = 100_000  # bindings kept (~150 bytes each); the oldest are forgotten first
REFUSED = "This session belongs to another client."
LOOPBACK = ("127.0.0.1", "::1")
OPEN = ""  # the binding of a session opened without the cookie: any client may use it
# POST routes whose JSON body may name a session (`session_hash`) or an event (`event_id`).
JSON_BODY_ROUTES = ("/queue/join", "/run/", "/api/", "/call/", "/cancel")
# GET routes that name a session in their path: /heartbeat/{session_hash}, /stream/{session_hash}/...
SESSION_PATH_ROUTES = ("/heartbeat/", "/stream/")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
EventSession = Callable[[str], str | None]  # event id -> the session it runs in, None when unknown


class SessionOwners:
    """Which client secret each session hash is bound to (thread-safe, bounded, oldest forgotten first)."""

    def __init__(self, capacity: int = SESSIONS_REMEMBERED) -> None:
        self.capacity = capacity
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, session: str, client: str) -> bool:
        """Bind `session` to `client` unless it is bound already; True when `client` may act on it."""
        with self._lock:
            owner = self._owners.setdefault(session, client)
            self._owners.move_to_end(session)
            while len(self._owners) > self.capacity:
                self._owners.popitem(last=False)
        return owner in (client, OPEN)

    def allows(self, session: str, client: str) -> bool:
        """True when `client` may act on `session`: it is bound to `client`, open, or not bound at all."""
        with self._lock:
            owner = self._owners.get(session)
        return owner is None or owner in (client, OPEN)


class SessionGuard:
    """ASGI middleware: see the module docstring. `event_session` finds the session of a queued or running
    event, so an event id of another session is refused too (Gradio's /cancel and /stream/{event_id} take
    one)."""

    def __init__(self, app: Callable, event_session: EventSession, owners: SessionOwners | None = None):
        self.app = app
        self.event_session = event_session
        self.owners = owners or SessionOwners()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = _cookie(scope)
        new_cookie = None if cookie else secrets.token_urlsafe(24)
        # A request without the cookie, or the MCP server's, binds the sessions it opens to no secret (see the
        # module docstring).
        client = OPEN if _from_mcp_server(scope) else cookie or OPEN
        route = _api_route(scope)
        sessions, events = _named_in_url(route, scope)
        if route is not None and scope["method"] == "POST" and route.startswith(JSON_BODY_ROUTES):
            body, receive = await _read_body(receive)
            body_sessions, body_events = _named_in_body(body)
            sessions, events = sessions + body_sessions, events + body_events
        owned = all(self.owners.claim(session, client) for session in sessions) and all(
            self.owners.allows(session, client) for session in filter(None, map(self.event_session, events))
        )
        if not owned:
            await _refuse(send)
            return
        await self.app(scope, receive, _with_cookie(send, new_cookie, _is_https(scope)))


def _from_mcp_server(scope: Scope) -> bool:
    """A request of Gradio's own MCP server: its loopback client marks every request `x-gradio-user: mcp`."""
    headers = dict(scope.get("headers", []))
    return headers.get(b"x-gradio-user") == b"mcp" and (scope.get("client") or ("",))[0] in LOOPBACK


def _api_route(scope: Scope) -> str | None:
    """The path after /gradio_api (wherever the app is mounted), or None for the page's other paths."""
    path: str = scope.get("path", "")
    start = path.find(API_PREFIX + "/")
    return None if start < 0 else path[start + len(API_PREFIX) :]


def _named_in_url(route: str | None, scope: Scope) -> tuple[list[str], list[str]]:
    """Sessions named in the query (?session_hash=) or the path; events named in /stream/{event_id}."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    sessions = list(query.get("session_hash", []))
    events: list[str] = []
    if route is None:
        return sessions, events
    parts = route.strip("/").split("/")
    if route.startswith(SESSION_PATH_ROUTES) and len(parts) >= 2:
        # GET /stream/{session_hash}/... and /heartbeat/{session_hash}; POST /stream/{event_id}[/close]
        (events if scope["method"] == "POST" and parts[0] == "stream" else sessions).append(parts[1])
    return sessions, events


def _named_in_body(body: bytes) -> tuple[list[str], list[str]]:
    try:
        payload = json.loads(body)
    except ValueError:
        return [], []  # not JSON: Gradio refuses it on its own
    if not isinstance(payload, dict):
        return [], []
    return (
        [value for value in (payload.get("session_hash"),) if isinstance(value, str) and value],
        [value for value in (payload.get("event_id"),) if isinstance(value, str) and value],
    )


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands the same messages on to the app."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return b"".join(chunks), replay


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            morsel = SimpleCookie(value.decode("latin-1")).get(COOKIE)
            if morsel and morsel.value:
                return morsel.value
    return None


def _is_https(scope: Scope) -> bool:
    forwarded = dict(scope.get("headers", [])).get(b"x-forwarded-proto", b"").decode("latin-1")
    return scope.get("scheme") == "https" or forwarded.split(",")[0].strip() == "https"


def _with_cookie(send: Send, token: str | None, https: bool) -> Send:
    """`send` adding Set-Cookie to the response start. Over HTTPS the cookie is SameSite=None and Partitioned,
    so it also works when the page is embedded in another site's frame (a Hugging Face Space)."""
    if token is None:
        return send
    attributes = "Secure; SameSite=None; Partitioned" if https else "SameSite=Lax"
    header = f"{COOKIE}={token}; Path=/; HttpOnly; {attributes}".encode("latin-1")

    async def send_with_cookie(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"set-cookie", header)]
        await send(message)

    return send_with_cookie


async def _refuse(send: Send) -> None:
    body = json.dumps({"error": REFUSED}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def queue_event_session(blocks: Any) -> EventSession:
    """An `EventSession` over a Blocks' queue: the session of an event waiting or running in it."""

    def event_session(event_id: str) -> str | None:
        queue = blocks._queue
        event = queue.event_ids_to_events.get(event_id)
        if event is not None:
            return event.session_hash
        for session, event_ids in list(queue.pending_event_ids_session.items()):
            if event_id in event_ids:
                return session
        return None

    return event_session


def session_guard_kwargs(blocks: Any) -> dict[str, Any]:
    """launch()'s `app_kwargs` installing the guard on the app Gradio creates for `blocks`."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(SessionGuard, event_session=queue_event_session(blocks))]}
