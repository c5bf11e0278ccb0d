"""The checks every request passes before Litestar routes it (security.md items 1, 2 and 6).

It wraps the whole ASGI handler rather than being Litestar middleware, because Litestar runs
middleware only for requests that matched a route: a DNS-rebinding page probing unknown paths
must be refused too, and every response (404s included) must carry the same headers.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A Content-Security-Policy strict enough that injected markup could not run anything: scripts
# and styles only from our own files, no inline code, no framing, no form posts elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # Other sites may not even embed our photos with <img>.
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # The page's own camera capture may ask for the camera (the browser still asks the user);
    # no other origin, and nobody the microphone or the location.
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
]
_HEADER_NAMES = {name for name, _ in SECURITY_HEADERS}
# Whatever a handler set, these never leave: no CORS grant to anyone (security.md item 2).
_DROPPED = {b"access-control-allow-origin", b"access-control-allow-credentials"}
# Off loopback every request must prove it holds the token `duetml serve` printed (as Jupyter
# does): `?token=` in the link opened first, then this cookie, which that answer sets.
TOKEN_COOKIE = "duetml_token"
TOKEN_PARAM = "token"


def allowed_host_values(port: int, extra_hosts: Iterable[str] = ()) -> frozenset[str]:
    """Host header values this server answers to: loopback names plus the chosen --host."""
    names = ["127.0.0.1", "localhost", "[::1]", *extra_hosts]
    values = set()
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"  # a bare IPv6 address, as it appears in a Host header
        values.add(f"{name}:{port}")
        if port == 80:
            values.add(name)
    return frozenset(values)


class RequestGuard:
    """Host check, token check, cross-site write check and security headers around an app.

    `token` is None on loopback (the machine's own user is the only one who can connect) and
    required for every request when the server listens on a network address.
    """

    def __init__(
        self, app: ASGIApp, allowed_hosts: frozenset[str], token: str | None = None
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        # Only the Host header counts: X-Forwarded-Host and friends are ignored on purpose.
        host = headers.get("host", "").lower()
        if host not in self.allowed_hosts:
            await _refuse(
                scope,
                send,
                "This address is not allowed: open duetml at http://127.0.0.1 with its port.",
            )
            return
        set_cookie: list[tuple[bytes, bytes]] = []
        if self.token is not None:
            presented = _token_from(scope, headers)
            if presented is None or not hmac.compare_digest(
                presented.encode("utf-8", "replace"), self.token.encode()
            ):
                await _refuse(
                    scope,
                    send,
                    "This duetml needs its token: open the link with ?token=... that "
                    "`duetml serve` printed.",
                )
                return
            if _cookie(headers, TOKEN_COOKIE) != self.token:
                # HttpOnly: the page's scripts never need it; Strict: no other site sends it.
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                set_cookie.append((b"set-cookie", cookie.encode()))
        method = scope.get("method", "GET")
        if scope["type"] == ScopeType.HTTP and method not in SAFE_METHODS:
            reason = self._cross_site_reason(headers)
            if reason:
                await _refuse(scope, send, reason)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in _HEADER_NAMES and k.lower() not in _DROPPED
                ]
                message = {**message, "headers": kept + SECURITY_HEADERS + set_cookie}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _cross_site_reason(self, headers: dict[str, str]) -> str | None:
        """Why a state-changing request is refused, or None when it may proceed.

        Browsers send Origin and Sec-Fetch-Site with every cross-site POST; a multipart upload
        needs no preflight, so this is the only thing between a web page and the user's photos.
        Requests without either header come from programs (curl, the tests), not pages.
        """
        fetch_site = headers.get("sec-fetch-site")
        # "same-site" is another port of this machine (another local server's page), and
        # "none" a navigation typed by hand: neither is the page writing, so both are refused.
        if fetch_site is not None and fetch_site.lower() != "same-origin":
            return "Requests from other sites are refused: use the duetml page itself."
        origin = headers.get("origin")
        if origin is None:
            return None
        parts = urlsplit(origin.strip().lower()) if origin.strip().lower() != "null" else None
        if parts is None or parts.scheme != "http" or parts.netloc not in self.allowed_hosts:
            return "Requests from other sites are refused: use the duetml page itself."
        return None


def sent_by_another_site(sec_fetch_site: str | None) -> bool:
    """True when a browser says another site (or another port here) made this request.

    For GETs that cost work (building an export): a page elsewhere could make the browser
    fetch them with a link or an <img>; the page itself sends "same-origin", a typed address
    "none", and programs no header at all.
    """
    return sec_fetch_site is not None and sec_fetch_site.lower() in ("cross-site", "same-site")


def _cookie(headers: dict[str, str], name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _token_from(scope: Scope, headers: dict[str, str]) -> str | None:
    """The token the request presents: in the query (a link), else in the cookie."""
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query).get(TOKEN_PARAM)
    if values:
        return values[0]
    return _cookie(headers, TOKEN_COOKIE)


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        if name in found:  # two Host (or Origin) headers: treat as unusable
            found[name] = "\x00"
            continue
        found[name] = raw_value.decode("latin-1")
    return found


async def _refuse(scope: Scope, send: Send, message: str) -> None:
    if scope["type"] == ScopeType.WEBSOCKET:
        await send({"type": "websocket.close", "code": 1008, "reason": None})
        return
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
