"""The hosted services' own HTTP shapes, served by the app next to the page, so their clients work unchanged
apart from the host:

- `POST /fal-ai/dwpose` `{"image_url", "draw_mode", "sync_mode"}` -> `{"image": {"url", "content_type",
  "file_name", "file_size", "width", "height"}}` (the url a `data:` URL, or with `"sync_mode": false` one on
  this server);
- `POST /v1/sdxl-openpose` with the SDXL-OpenPose body -> `{"images": [...], "seeds": [...]}` (base64 PNGs
  with `"base64": true`, else URLs on this server).

Both submit to the page's own /dwpose and /generate events through Gradio's queue, with gradio_client on
the server's local address: the same GPU queue, concurrency limit and queue size as the page, never around
them. A full queue answers 429. Every failure has one JSON shape, `{"error": {"type", "message"}}`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from PIL import Image
from starlette.concurrency import run_in_threadpool

from pipelines.errors import ValidationError
from pipelines.generation import GenerationRequest
from pipelines.pose import DrawMode, parse_mode
from pipelines.settings import ENV_PREFIX, Settings
from ui.base import GENERIC_ERROR
from ui.fetch import FetchPolicy, fetch_url
from ui.generate_panel import FLOAT_FIELDS, GENERATE_API

log = logging.getLogger(__name__)

DWPOSE_PATH = "/fal-ai/dwpose"
SDXL_OPENPOSE_PATH = "/v1/sdxl-openpose"
BASE64_OVERHEAD = 4 / 3  # a JSON body carries the image as base64
BODY_SLACK = 64 * 1024  # room for the other fields of a body

# Each route's fields -> (type check, default); "image"/"image_url" has no default: it is required.
_TEXT, _BOOL, _ANY = (str,), (bool,), (object,)
DWPOSE_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "image_url": (_TEXT, None),
    "draw_mode": (_TEXT, DrawMode.BODY_POSE.value),
    "sync_mode": (_BOOL, True),  # fal's: true returns the image as a data: URL (our default)
}
_REQUEST_DEFAULTS = GenerationRequest(prompt="")
SDXL_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "image": ((str, dict, list), None),  # a URL, a data: URL, raw base64, or the pose JSON itself
    "prompt": (_TEXT, None),
    **{name: (_ANY, getattr(_REQUEST_DEFAULTS, name)) for name in GENERATE_API if name != "prompt"},
    "base64": (_BOOL, False),
}


class ApiError(Exception):
    """A failure answered as `{"error": {"type", "message"}}` with `status`."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"type": self.kind, "message": self.message}}, status_code=self.status)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


@dataclasses.dataclass
class HostedApi:
    """The two routes over the running app; `local_url` gives the app's own address once it listens."""

    settings: Settings
    local_url: Callable[[], str]
    _client: Client | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def routes(self) -> list[APIRoute]:
        """For `launch(app_kwargs={"routes": ...})`: FastAPI routes, matched before Gradio's own."""
        handlers = {DWPOSE_PATH: self.dwpose, SDXL_OPENPOSE_PATH: self.sdxl_openpose}
        return [
            APIRoute(path, self._endpoint(handler), methods=["POST"], include_in_schema=False)
            for path, handler in handlers.items()
        ]

    # ----- plumbing -----------------------------------------------------------------------------------

    def _endpoint(self, handler: Callable[[dict, str], dict]) -> Callable:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                self._authorise(request)
                body = await self._body(request)
                result = await run_in_threadpool(handler, body, str(request.base_url))
            except ApiError as error:
                return error.response()
            except Exception:
                log.exception("unexpected error in a hosted API route")
                return ApiError(500, "server_error", GENERIC_ERROR).response()
            return JSONResponse(result)

        return endpoint

    def _authorise(self, request: Request) -> None:
        expected = self.settings.api_key
        if not expected:
            return
        given = request.headers.get("x-api-key") or ""
        authorization = request.headers.get("authorization") or ""
        if authorization[:4].lower() == "key ":
            given = given or authorization[4:].strip()
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(
                401, "unauthorized", "An API key is needed: send x-api-key: KEY or Authorization: Key KEY."
            )

    async def _body(self, request: Request) -> dict:
        limit = int(self.settings.max_upload_mb * 1024 * 1024 * BASE64_OVERHEAD) + BODY_SLACK
        raw = await request.body()
        if len(raw) > limit:
            raise ApiError(413, "too_large", f"The request body is larger than {limit // (1024 * 1024)} MB.")
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise bad_request(f"The body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise bad_request("The body must be a JSON object.")
        return body

    def client(self) -> Client:
        """One gradio_client on the app's own address, made on first use (the app is listening by then)."""
        with self._lock:
            if self._client is None:
                self._client = Client(self.local_url(), verbose=False, download_files=False)
            return self._client

    def _submit(self, api_name: str, **arguments: Any) -> Any:
        """One job through Gradio's queue; its failures as ApiErrors."""
        try:
            return self.client().predict(**arguments, api_name=api_name)
        except QueueError as error:
            raise ApiError(429, "queue_full", str(error) or "Queue is full! Please try again.") from None
        except AppError as error:
            message = str(error)
            if message == GENERIC_ERROR:
                raise ApiError(500, "server_error", message) from None
            raise bad_request(message) from None

    # ----- fields -----------------------------------------------------------------------------------------

    @staticmethod
    def _fields(body: dict, table: dict[str, tuple[tuple[type, ...], Any]]) -> dict[str, Any]:
        unknown = [name for name in body if name not in table]
        if unknown:
            raise bad_request(f"Unknown field(s): {', '.join(unknown)}. Accepted: {', '.join(table)}.")
        values = {}
        for name, (kinds, default) in table.items():
            value = body.get(name, default)
            if value is None and default is None and name in ("image", "image_url", "prompt"):
                raise bad_request(f"{name} is required.")
            if value is not None and not isinstance(value, kinds):
                noun = {_TEXT: "text", _BOOL: "true or false"}.get(kinds, "a URL, base64 text or a pose JSON")
                raise bad_request(f"{name} must be {noun} (got {value!r})")
            values[name] = value
        return values

    def _image_file(self, image: Any, folder: Path) -> str:
        """The request's image as a file for the queue: fetched, decoded, or the pose JSON written out."""
        if isinstance(image, (dict, list)):
            data = json.dumps(image).encode()
        elif image.startswith("data:"):
            data = _data_url(image)
        elif urlsplit(image).scheme in ("http", "https"):
            if not self.settings.fetch_urls:
                raise bad_request(
                    f"Fetching image URLs is off on this server ({ENV_PREFIX}FETCH_URLS); send the image as "
                    "a data: URL or base64."
                )
            policy = FetchPolicy(
                self.settings.fetch_allow_loopback,
                self.settings.max_upload_mb * 1024 * 1024,
                self.settings.fetch_timeout_s,
            )
            try:
                data = fetch_url(image, policy)
            except ValidationError as error:
                raise bad_request(str(error)) from None
        else:
            data = _base64(image, "image")
        suffix = ".json" if data.lstrip()[:1] in (b"{", b"[") else ".png"
        path = folder / f"input{suffix}"
        path.write_bytes(data)
        return str(path)

    # ----- routes -----------------------------------------------------------------------------------------

    def dwpose(self, body: dict, base_url: str) -> dict:
        fields = self._fields(body, DWPOSE_FIELDS)
        mode = _checked(parse_mode, fields["draw_mode"]).value
        with tempfile.TemporaryDirectory(prefix="pose-studio-api-") as folder:
            image = self._image_file(fields["image_url"], Path(folder))
            drawn, _ = self._submit("/dwpose", image=handle_file(image), draw_mode=mode)
        path = Path(drawn["path"])
        data = path.read_bytes()
        with Image.open(path) as picture:
            width, height = picture.size
        url = _data_uri(data) if fields["sync_mode"] else _public_url(drawn, base_url)
        file = {"url": url, "content_type": "image/png", "file_name": f"dwpose-{mode}.png"}
        return {"image": {**file, "file_size": len(data), "width": width, "height": height}}

    def sdxl_openpose(self, body: dict, base_url: str) -> dict:
        fields = self._fields(body, SDXL_FIELDS)
        parameters = {name: fields[name] for name in GENERATE_API}
        request = GenerationRequest(**_as_request_types(parameters))
        _checked(request.validate)
        with tempfile.TemporaryDirectory(prefix="pose-studio-api-") as folder:
            image = self._image_file(fields["image"], Path(folder))
            samples, seeds = self._submit("/generate", image=handle_file(image), **_api_arguments(request))
        images = [item["image"] for item in samples]
        if fields["base64"]:
            encoded = [base64.b64encode(Path(item["path"]).read_bytes()).decode() for item in images]
            return {"images": encoded, "seeds": seeds}
        return {"images": [_public_url(item, base_url) for item in images], "seeds": seeds}


def _api_arguments(request: GenerationRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in GENERATE_API}


def _as_request_types(parameters: dict[str, Any]) -> dict[str, Any]:
    """Whole numbers sent for the float fields (guidance_scale: 7) become floats, as the page does."""
    return {
        name: float(value)
        if name in FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool)
        else value
        for name, value in parameters.items()
    }


def _checked(check: Callable, *arguments: Any) -> Any:
    try:
        return check(*arguments)
    except ValidationError as error:
        raise bad_request(str(error)) from None


def _data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if header.endswith(";base64"):
        return _base64(payload, "image (data: URL)")
    return unquote_to_bytes(payload)


def _base64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{name} must be an http(s) URL, a data: URL or base64 (it is none)") from None


def _data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _public_url(file: dict, base_url: str) -> str:
    """The file's URL on this server as the client reached it (not the loopback address we used)."""
    parts = urlsplit(file["url"])
    return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
