"""Which addresses a server-side fetch may connect to, and how host spellings map to IP addresses.

The fetch guard (lalm/serve/fetch.py) asks two questions here, both pure functions with no network use:
`parse_ip_host` turns every way of writing an IP in a URL host into an address (so `127.1`, `2130706433`,
`0x7f000001` cannot pass as names and reach the system resolver, which would read them as 127.0.0.1), and
`refusal` says why an address is not allowed: anything that is not a public unicast address, including IPv6
forms that carry a refused IPv4 address inside them."""

from __future__ import annotations

import ipaddress
import re

__all__ = ["IPAddress", "InvalidHost", "is_loopback_name", "parse_ip_host", "refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SPECIAL = "a special-purpose, non-public address"
_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Most specific first: the first match names the reason. Anything not listed but not global is still refused
# (the catch-all in `refusal`), so this table is for clear messages, not for completeness.
_IPV4_RULES: list[tuple[ipaddress.IPv4Network, str]] = [
    (_V4("169.254.169.254/32"), "the cloud metadata address"),
    (_V4("100.100.100.200/32"), "the cloud metadata address"),
    (_V4("0.0.0.0/8"), "an unspecified address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("255.255.255.255/32"), "the broadcast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
    # Listed although `is_global` knows most of them: which ranges it knows changed within Python 3.11.x.
    (_V4("192.0.0.0/24"), _SPECIAL),  # IETF protocol assignments (incl. Oracle's metadata 192.0.0.192)
    (_V4("192.0.2.0/24"), _SPECIAL),  # documentation
    (_V4("198.18.0.0/15"), _SPECIAL),  # benchmarking
    (_V4("198.51.100.0/24"), _SPECIAL),  # documentation
    (_V4("203.0.113.0/24"), _SPECIAL),  # documentation
]
_IPV6_RULES: list[tuple[ipaddress.IPv6Network, str]] = [
    (_V6("fd00:ec2::254/128"), "the cloud metadata address"),
    (_V6("::/128"), "an unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("::/96"), "a reserved address"),  # IPv4-compatible (deprecated)
    (_V6("::ffff:0:0:0/96"), "a reserved address"),  # IPv4-translated (SIIT)
    (_V6("fc00::/7"), "a unique-local (private) address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local (private) address"),
    (_V6("ff00::/8"), "a multicast address"),
    (_V6("100::/64"), _SPECIAL),  # discard-only
    (_V6("2001::/23"), _SPECIAL),  # IETF protocol assignments, Teredo included
    (_V6("2001:db8::/32"), _SPECIAL),  # documentation
    (_V6("3fff::/20"), _SPECIAL),  # documentation
]

# IPv6 ranges whose low 32 bits are an IPv4 address a router or the kernel may deliver to: IPv4-mapped
# (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96
# and the local-use 64:ff9b:1::/48). 6to4 and Teredo carry theirs elsewhere (see `_embedded_ipv4`).
_LOW32_EMBEDDING: list[ipaddress.IPv6Network] = [
    _V6("::ffff:0:0/96"),
    _V6("::ffff:0:0:0/96"),
    _V6("::/96"),
    _V6("64:ff9b::/96"),
    _V6("64:ff9b:1::/48"),
]

# :: and ::1 fall in ::/96 but are the IPv6 unspecified and loopback addresses, judged as such.
_NOT_EMBEDDING = (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_DIGITS = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"0[0-7]*")
_HEX = re.compile(r"0x[0-9a-f]*")


class InvalidHost(ValueError):
    """A host that looks like an IP address but is not a valid one (e.g. `1.2.3.4.5`, `08`)."""


def is_loopback_name(host: str) -> bool:
    """True for `localhost` and names under it (RFC 6761 reserves them for loopback), refused without asking
    any resolver. `host` is lower-case without a trailing dot."""
    return host == "localhost" or host.endswith(".localhost")


def _ipv4_number(part: str) -> int | None:
    """One part of a WHATWG IPv4 host: decimal, octal (leading 0) or hex (0x); None if it is none of them."""
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP address a URL host denotes, or None when the host is a name to resolve.

    `host` is lower-case, IDNA-encoded, without IPv6 brackets. IPv6 literals are parsed as such. A host whose
    last label is a number is an IPv4 address in the WHATWG URL sense, which is also how the C library's
    `inet_aton` reads it: one to four parts, each decimal, octal or hex, the last filling the remaining bytes
    (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1` all mean 127.0.0.1). Raises `InvalidHost` when such a
    host is not a valid address, so it is never handed to a resolver as a name."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InvalidHost(f"'{host}' is not a valid IPv6 address") from exc
    parts = host.removesuffix(".").split(".")
    if not _DIGITS.fullmatch(parts[-1]) and _ipv4_number(parts[-1]) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise InvalidHost(f"'{host}' is not a valid IPv4 address")
    *leading, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(parts)):
        raise InvalidHost(f"'{host}' is not a valid IPv4 address")
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and may be routed to, if any."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _LOW32_EMBEDDING) and ip not in _NOT_EMBEDDING:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why a fetch must not connect to `ip`, as a phrase without the address (e.g. "a loopback address", so a
    caller can choose not to reveal what an internal name resolves to), or None if it may.

    Allowed: public unicast addresses only. IPv6 addresses that embed an IPv4 address are judged by that
    IPv4 address first, so ::ffff:127.0.0.1, 64:ff9b::7f00:1 and 2002:7f00:1:: are refused as loopback."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = refusal(inner)
            if why is not None:
                return f"an IPv6 form of {why}"
            if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is how a dual-stack socket names a.b.c.d itself
                return None
        rules: list = _IPV6_RULES
    else:
        rules = _IPV4_RULES
    for net, label in rules:
        if ip in net:
            return label
    # A zone index only makes sense on a link; on a global address it is a parser trick.
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "a zone-scoped IPv6 address"
    if not ip.is_global:
        return _SPECIAL
    return None
