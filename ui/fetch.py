"""Fetching an image URL a hosted-API client sent, without letting it reach into the server's own network.

http(s) only; the host is resolved once and every address must be public (loopback only where the server
allows it, for tests), and the connection goes to that vetted address, so a second DNS answer cannot swap
it; each redirect is checked the same way; the body is capped in size and the whole fetch in time."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from pipelines.errors import ValidationError

SCHEMES = {"http": (http.client.HTTPConnection, 80), "https": (http.client.HTTPSConnection, 443)}
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchPolicy:
    allow_loopback: bool  # 127.0.0.0/8 and ::1 (the tests' own servers); private ranges never
    max_bytes: int
    timeout_s: float


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address we vetted, whatever DNS says next."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


PINNED = {"http": _PinnedHTTPConnection, "https": _PinnedHTTPSConnection}


def _vetted_address(host: str, port: int, policy: FetchPolicy) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ValidationError(f"image URL: the host {host!r} could not be resolved") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not (ip.is_global or (policy.allow_loopback and ip.is_loopback)):
            raise ValidationError(
                f"image URL: {host} is a loopback or private address ({address}); only public hosts are "
                "fetched"
            )
    return addresses[0]


def fetch_url(url: str, policy: FetchPolicy) -> bytes:
    """The body of `url` (following checked redirects); ValidationError saying why not."""
    deadline = time.monotonic() + policy.timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValidationError(f"image URL must be http(s) or a data: URL (got {url[:60]!r})")
        port = parts.port or SCHEMES[parts.scheme][1]
        address = _vetted_address(parts.hostname, port, policy)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ValidationError(f"image URL: no answer within {policy.timeout_s:g} s")
        connection = PINNED[parts.scheme](parts.hostname, port, address, remaining)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", path, headers={"User-Agent": "pose-studio", "Accept": "image/*, */*"})
            response = connection.getresponse()
            if response.status in REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location"))
                continue
            if response.status != 200:
                raise ValidationError(f"image URL answered HTTP {response.status}")
            return _read_capped(response, policy, deadline)
        except (OSError, http.client.HTTPException) as error:
            raise ValidationError(f"image URL could not be fetched: {error}") from None
        finally:
            connection.close()
    raise ValidationError(f"image URL redirected more than {MAX_REDIRECTS} times")


def _read_capped(response: http.client.HTTPResponse, policy: FetchPolicy, deadline: float) -> bytes:
    too_big = ValidationError(f"image URL: the file is larger than {_size(policy.max_bytes)}")
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > policy.max_bytes:
        raise too_big
    body = bytearray()
    while chunk := response.read(CHUNK):
        body += chunk
        if len(body) > policy.max_bytes:
            raise too_big
        if time.monotonic() > deadline:
            raise ValidationError(f"image URL: no full answer within {policy.timeout_s:g} s")
    return bytes(body)


def _size(count: int) -> str:
    return f"{count / 2**20:g} MB" if count >= 2**20 else f"{count // 1024} KB"
