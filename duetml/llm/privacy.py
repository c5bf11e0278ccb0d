"""Where data goes, and keeping API keys out of sight.

`is_local_url` decides whether photos and prompts stay on this machine; it never resolves
names through DNS, because an answer that depends on the resolver can be rebound by whoever
controls it. Anything it cannot prove is loopback counts as remote: the safe mistake is to
warn about a local server, never to call a remote one local.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Backslashes and whitespace make URL parsers disagree about the host (WHATWG treats `\` as
# `/`, urllib does not), so a URL containing them is never trusted as local.
_AMBIGUOUS_URL = re.compile(r"[\\\s\x00-\x1f\x7f]")

_LOCAL_NAMES = frozenset({"localhost", "localhost."})

_UNIX_SCHEMES = frozenset({"unix", "http+unix", "https+unix"})


def is_local_url(url: str | None) -> bool:
    """True when `url` points at this machine: 127.0.0.0/8, ::1, `localhost`, or a unix socket.

    `0.0.0.0`, other names (even `localhost.example.com`) and anything unparsable are remote.
    A bare ``host:port`` (as `OLLAMA_HOST` allows) is read as ``http://host:port``.
    """
    if not url or _AMBIGUOUS_URL.search(url):
        return False
    if url.startswith("/"):  # a unix socket path given as is
        return True
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme.lower() in _UNIX_SCHEMES:
        return True
    if not host:
        return False
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


# An endpoint as duetml accepts it: http(s), a host, an optional port of digits, a path. No
# user or password, query, fragment, whitespace, backslash or percent-escape in the host:
# what the URL parsers in the chain (urllib, httpx, the OS resolver) could read differently.
_ENDPOINT = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A last label like these makes the OS resolver read the whole name as an IPv4 address in
# some shorthand (127.1, 0x7f.1, 2130706433, 017700000001): only the dotted quad is taken.
_NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Endpoint:
    """A server as the HTTP client will reach it: scheme, host (lower case, IPv6 in
    brackets) and port (the scheme's default filled in)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        """``scheme://host:port``: what approvals are keyed on (the path goes to the same
        server, as for a browser's origin)."""
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_endpoint(url: str) -> Endpoint:
    """`url` as an endpoint, or ValueError saying what is wrong with it.

    Strict on purpose: an address two parsers could read as two servers (a port of "+18002"
    that httpx takes and urllib refuses, a host in IPv4 shorthand) is refused, never guessed.
    """
    text = url.strip()
    match = _ENDPOINT.fullmatch(text)
    if match is None:
        if "@" in text:
            raise ValueError("it contains a user or password")
        raise ValueError("it is not of the form http://host:port/path")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"its scheme is {scheme}, not http or https")
    host = match["host"].lower()
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("its IPv6 address does not parse") from None
        host = f"[{address.compressed}]"
    else:
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
        if not all(_LABEL.fullmatch(label) for label in labels):
            raise ValueError("its host name is not made of letters, digits and hyphens")
        if _NUMERIC_LABEL.fullmatch(labels[-1]):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError("its host is not a plain IPv4 address (like 127.0.0.1)") from None
    port = int(match["port"]) if match["port"] is not None else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise ValueError("its port is not between 1 and 65535")
    return Endpoint(scheme, host, port, (match["path"] or "").rstrip("/"))


def endpoint_key(url: str | None) -> str | None:
    """The origin approvals are stored under, or None for a URL that does not parse."""
    if not url:
        return None
    try:
        return parse_endpoint(url).origin
    except ValueError:
        return None


def display_url(url: str | None) -> str | None:
    """The URL without user, password, query or fragment, safe to show and to log."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if ":" in host:  # IPv6 literals need their brackets back
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def mask_key(key: str | None) -> str | None:
    """A tail that lets a person recognise which key is in use, e.g. ``sk-…abcd``.

    Short keys are masked entirely: four known characters of a ten-character key is too many.
    """
    if not key:
        return None
    if len(key) < 16:
        return "…"
    return f"{key[:3]}…{key[-4:]}"


# Base64 runs shorter than this could occur by chance in ordinary text; keys are far longer.
_MIN_BASE64_RUN = 12


def _base64_forms(key: str) -> list[str]:
    """The parts of base64(anything + key + anything) that depend only on the key.

    Base64 turns 3 bytes into 4 characters, so what the key becomes depends on how many bytes
    precede it (0, 1 or 2 modulo 3); for each case the characters made only of key bits are
    the same whatever surrounds the key.
    """
    data = key.encode("utf-8")
    forms: list[str] = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode("ascii")
        start = -(-8 * offset // 6)  # the first character made only of key bits
        end = 8 * (offset + len(data)) // 6  # one past the last such character
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64_RUN:
            forms.append(core)
            forms.append(core.replace("+", "-").replace("/", "_"))
    return list(dict.fromkeys(forms))


class Secret:
    """Holds an API key so that repr, str, f-strings and tracebacks with locals show it masked.

    Typer's rich tracebacks print local variables; anything holding a key goes through this.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself: call only where it is handed to the HTTP client."""
        return self._value

    @property
    def masked(self) -> str:
        return mask_key(self._value) or "…"

    def redact(self, text: str) -> str:
        """`text` with every occurrence of the key replaced by its masked form.

        Also the key in another case ("SK-PROJ-…", as some servers normalise what they echo)
        and base64-encoded (an echoed `Authorization: Basic` header, or a body that wraps the
        request), at any alignment and in the URL-safe alphabet too.
        """
        if not self._value:
            return text
        text = re.sub(re.escape(self._value), self.masked, text, flags=re.IGNORECASE)
        for encoded in _base64_forms(self._value):
            text = text.replace(encoded, self.masked)
        return text

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret is not pickled, so a key cannot end up in a file")
