"""Fetch the audio behind an http(s) `audio_url` without letting a request reach the gateway's own network.

The risk is server-side request forgery: a chat request naming http://169.254.169.254/ or
http://127.0.0.1:8000/ would make the gateway read cloud credentials or private services for the caller.
The guard:
- accepts only http and https, and only when `allow_remote_audio_urls` is on;
- resolves the host once and refuses it unless every address is public (lalm/serve/address_policy.py), then
  connects to an address it checked, sending the original Host header and TLS server name, so DNS cannot
  answer differently between check and connect (no rebinding window);
- follows redirects itself, checking each hop the same way, at most `url_fetch_max_redirects`;
- bounds the total time (`url_fetch_timeout_s`) and the size (`max_upload_bytes`, from Content-Length and
  while streaming), and ignores proxy environment variables.
Hosts in `url_fetch_allowlist` skip the address check (they are still resolved once and pinned).
Every refusal is a `FetchError` whose message says what was wrong, for the gateway to answer as a 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from lalm.config import Settings
from lalm.errors import LalmError
from lalm.serve.address_policy import InvalidHost, is_loopback_name, parse_ip_host, refusal

__all__ = ["FetchError", "Resolver", "Target", "check_url", "fetch_audio_url", "system_resolve"]

_log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> IP address strings`; the seam tests use to resolve names without DNS."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A host name after IDNA encoding: dot-separated labels of letters, digits, '-' and '_'.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


class FetchError(LalmError):
    """An audio URL that cannot be fetched. `status` is the HTTP status the gateway should answer (400, or
    413 for a body over the size limit); `code` names the reason: unsupported_url_scheme, invalid_url,
    remote_urls_disabled, forbidden_address, unresolvable_host, invalid_redirect, too_many_redirects,
    upstream_status, file_too_large, fetch_timeout, fetch_failed."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_url") -> None:
        super().__init__(message, status=status, code=code)


@dataclass(frozen=True)
class Target:
    """A URL that passed the guard. `host` is its normalised host (IDNA name without trailing dot, or the
    canonical IP text); `addresses` are the checked IPs it resolved to, the only ones ever connected to."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve `host` with the system resolver (getaddrinfo), IPv4 and IPv6, in its preference order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse(url: str | httpx.URL, what: str) -> tuple[httpx.URL, str, int]:
    """Parse and validate the shape of `url`: (url, raw lower-case host, port)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"{what} is not a valid URL: {exc}", code="invalid_url") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        shown = f"'{parsed.scheme}:'" if parsed.scheme else "a URL without a scheme"
        raise FetchError(f"{what} must be an http:// or https:// URL, not {shown}", code="unsupported_url_scheme")
    # Credentials in a URL are a classic way to make a host look like another (http://trusted@evil/).
    if parsed.userinfo:
        raise FetchError(f"{what} must not contain credentials (user@host)", code="invalid_url")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise FetchError(f"{what} has no host", code="invalid_url")
    port = _DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if not 0 < port < 65536:
        raise FetchError(f"{what} has an invalid port {port}", code="invalid_url")
    return parsed, host, port


def _canonical_host(host: str, what: str) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """(normalised host, its IP if the host is an address in any spelling, else None)."""
    try:
        ip = parse_ip_host(host)
    except InvalidHost as exc:
        raise FetchError(f"{what} host {exc}", code="invalid_url") from None
    if ip is not None:
        return str(ip), ip
    name = host.removesuffix(".")
    if len(name) > 253 or not _HOST_NAME.fullmatch(name):
        raise FetchError(f"{what} host '{host}' is not a valid host name", code="invalid_url")
    return name, None


def _allowlisted(host: str, port: int, allowlist: list[str]) -> bool:
    """Whether (host, port) matches an allow-list entry `host` or `host:port` (IPv6 as `[addr]:port` or bare).
    Entries are normalised like URL hosts, so `127.0.0.1` also matches `http://2130706433/`; an entry that is
    not a valid host never matches."""
    for entry in allowlist:
        entry = entry.strip().lower()
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = f"[{entry}]"
        try:
            parsed = httpx.URL(f"http://{entry}/")
            entry_host, _ = _canonical_host(parsed.raw_host.decode("ascii"), "allow-list entry")
        except (httpx.InvalidURL, FetchError):
            continue
        if entry_host == host and parsed.port in (None, port):
            return True
    return False


async def check_url(
    url: str | httpx.URL, settings: Settings, resolve: Resolver = system_resolve, what: str = "audio_url"
) -> Target:
    """The guard: validate `url`, resolve its host once and check every address; never connects.

    `what` names the URL in messages (the request's audio_url or a redirect hop). Raises `FetchError` with
    code unsupported_url_scheme, invalid_url, forbidden_address or unresolvable_host."""
    parsed, raw_host, port = _parse(url, what)
    host, literal = _canonical_host(raw_host, what)
    allowed = _allowlisted(host, port, settings.url_fetch_allowlist)
    subject = what if literal is not None else f"{what} host '{host}'"
    if literal is not None:
        addresses = [literal]
    else:
        if is_loopback_name(host) and not allowed:
            raise FetchError(f"{subject} is a loopback name, which is not allowed", code="forbidden_address")
        try:
            addresses = [ipaddress.ip_address(a) for a in await resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise FetchError(f"{subject} could not be resolved ({exc})", code="unresolvable_host") from None
        if not addresses:
            raise FetchError(f"{subject} could not be resolved", code="unresolvable_host")
    if not allowed:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                _log.info("refused %s: %s resolves to %s (%s)", what, host, why, address)
                # The user wrote an address: show it. A name's internal address stays out of the answer,
                # so the gateway is no oracle for the private DNS it can see.
                shown = f"{why} ({address})" if literal is not None else why
                raise FetchError(f"{subject} resolves to {shown}, which is not allowed", code="forbidden_address")
    return Target(parsed, host, port, tuple(str(a) for a in addresses))


async def fetch_audio_url(
    url: str,
    settings: Settings,
    *,
    resolve: Resolver = system_resolve,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """Download the body of an http(s) audio URL through the guard and return its bytes (undecoded).

    `resolve` and `transport` are seams for tests (a resolver without DNS, an httpx.MockTransport); the
    gateway passes neither. Raises `FetchError` for every refusal or failure; nothing else escapes."""
    _parse(url, "audio_url")
    if not settings.allow_remote_audio_urls:
        raise FetchError(
            "audio_url: fetching http(s) URLs is disabled on this server; send the audio inline "
            "(input_audio, or a data: URL)",
            code="remote_urls_disabled",
        )
    try:
        async with asyncio.timeout(settings.url_fetch_timeout_s):
            return await _follow(url, settings, resolve, transport)
    except (TimeoutError, httpx.TimeoutException):
        raise FetchError(
            f"audio_url took longer than the {settings.url_fetch_timeout_s:g} s limit to download",
            code="fetch_timeout",
        ) from None


async def _follow(url: str, settings: Settings, resolve: Resolver, transport: httpx.AsyncBaseTransport | None) -> bytes:
    """GET `url`, following at most `url_fetch_max_redirects` redirects, each hop checked by the guard."""
    client = httpx.AsyncClient(
        transport=transport or httpx.AsyncHTTPTransport(trust_env=False),
        trust_env=False,
        follow_redirects=False,
        timeout=settings.url_fetch_timeout_s,
    )
    async with client:
        current: str | httpx.URL = url
        for hop in range(settings.url_fetch_max_redirects + 1):
            what = "audio_url" if hop == 0 else f"audio_url redirect {hop} ({current})"
            target = await check_url(current, settings, resolve, what)
            try:
                result = await _get(client, target, settings.max_upload_bytes, what)
            except httpx.TimeoutException:
                raise  # reported with the time limit by fetch_audio_url
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise FetchError(f"{what}: download from {target.host} failed: {exc}", code="fetch_failed") from None
            if isinstance(result, bytes):
                return result
            current = result
    raise FetchError(
        f"audio_url redirected more than {settings.url_fetch_max_redirects} times", code="too_many_redirects"
    )


async def _get(client: httpx.AsyncClient, target: Target, limit: int, what: str) -> bytes | httpx.URL:
    """One hop: the body, or the URL a redirect points to. Connects only to `target.addresses`, moving to the
    next one when a connection cannot be opened (e.g. an IPv6 address on a host without IPv6 routes)."""
    for address in target.addresses[:-1]:
        with contextlib.suppress(httpx.ConnectError):
            return await _request(client, target, address, limit, what)
    return await _request(client, target, target.addresses[-1], limit, what)


async def _request(client: httpx.AsyncClient, target: Target, address: str, limit: int, what: str) -> bytes | httpx.URL:
    """GET `target.url` from `address`, presenting the URL's own host name (Host header, TLS SNI and
    certificate check), so the connection goes to the checked IP whatever DNS says now."""
    headers = {
        "Host": target.url.netloc.decode("ascii"),
        "Accept-Encoding": "identity",
        "User-Agent": "lalm-audio-fetch",
        # One connection per hop: a kept-alive TLS connection checked for one host name must not carry a
        # redirect to another name that happens to share its address.
        "Connection": "close",
    }
    pinned = target.url.copy_with(host=address)
    async with client.stream("GET", pinned, headers=headers, extensions={"sni_hostname": target.host}) as response:
        return await _read(response, target, limit, what)


async def _read(response: httpx.Response, target: Target, limit: int, what: str) -> bytes | httpx.URL:
    """The body of a 2xx response (at most `limit` bytes) or the next URL of a redirect."""
    status = response.status_code
    if status in _REDIRECTS:
        location = response.headers.get("location")
        if not location:
            raise FetchError(f"{what} answered HTTP {status} without a Location header", code="invalid_redirect")
        try:
            return target.url.join(location)
        except httpx.InvalidURL as exc:
            raise FetchError(f"{what} redirects to an invalid URL: {exc}", code="invalid_redirect") from None
    if not 200 <= status < 300:
        raise FetchError(
            f"{what} answered HTTP {status} {response.reason_phrase}".rstrip() + "; expected 200 with audio",
            code="upstream_status",
        )
    too_large = f"{what} is larger than the {limit}-byte limit"
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise FetchError(f"{too_large} (Content-Length {length})", status=413, code="file_too_large")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise FetchError(too_large, status=413, code="file_too_large")
    return bytes(body)
