"""The fetch guard as pure functions, with no network traffic at all: address policy on a table of IPv4 and
IPv6 addresses (embedded forms included), every host spelling, and `check_url` on URLs whose names are
resolved by an injected table instead of DNS."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from fetch_testkit import NAMES, FakeResolver

from lalm.config import Settings
from lalm.serve.address_policy import InvalidHost, parse_ip_host, refusal
from lalm.serve.fetch import FetchError, Target, check_url, system_resolve


def settings(**overrides: object) -> Settings:
    return Settings(allow_remote_audio_urls=True, **overrides)


def check(url: str, resolver: FakeResolver | None = None, **overrides: object) -> Target:
    return asyncio.run(check_url(url, settings(**overrides), resolver or FakeResolver(NAMES)))


# --- address policy -------------------------------------------------------------------------------------

REFUSED_ADDRESSES = [
    ("127.0.0.1", "a loopback address"),
    ("127.3.4.5", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("0.1.2.3", "an unspecified address"),
    ("10.0.0.1", "a private address"),
    ("10.255.255.255", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.254", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.0.1", "a link-local address"),
    ("169.254.169.254", "the cloud metadata address"),
    ("100.100.100.200", "the cloud metadata address"),
    ("100.64.0.1", "a carrier-grade NAT (shared) address"),
    ("100.127.255.254", "a carrier-grade NAT (shared) address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "the broadcast address"),
    ("192.0.2.1", "a special-purpose, non-public address"),  # TEST-NET-1
    ("198.18.0.1", "a special-purpose, non-public address"),  # benchmarking
    ("192.0.0.8", "a special-purpose, non-public address"),  # IETF protocol assignments
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fc00::1", "a unique-local (private) address"),
    ("fd12:3456::1", "a unique-local (private) address"),
    ("fd00:ec2::254", "the cloud metadata address"),
    ("fe80::1", "a link-local address"),
    ("febf:ffff::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("fec0::1", "a site-local (private) address"),
    ("ff02::1", "a multicast address"),
    ("ff0e::1", "a multicast address"),
    ("2001:db8::1", "a special-purpose, non-public address"),  # documentation
    ("2606:4700::1111%eth0", "a zone-scoped IPv6 address"),
    ("::8.8.8.8", "a reserved address"),  # IPv4-compatible: deprecated, not routed
    ("::ffff:0:8.8.8.8", "a reserved address"),  # IPv4-translated (SIIT)
]

# IPv6 forms that carry an IPv4 address: judged by that IPv4 address.
EMBEDDING = [
    ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
    ("::ffff:7f00:1", "a loopback address"),
    ("0:0:0:0:0:ffff:127.0.0.1", "a loopback address"),
    ("::ffff:169.254.169.254", "the cloud metadata address"),
    ("::ffff:10.0.0.1", "a private address"),
    ("::ffff:0.0.0.0", "an unspecified address"),
    ("::127.0.0.1", "a loopback address"),  # IPv4-compatible
    ("::ffff:0:127.0.0.1", "a loopback address"),  # IPv4-translated
    ("64:ff9b::7f00:1", "a loopback address"),  # NAT64
    ("64:ff9b::169.254.169.254", "the cloud metadata address"),
    ("64:ff9b:1::7f00:1", "a loopback address"),  # local-use NAT64
    ("2002:7f00:1::", "a loopback address"),  # 6to4
    ("2002:a9fe:a9fe::1", "the cloud metadata address"),
    ("2002:c0a8:101::", "a private address"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address"),  # Teredo, client 127.0.0.1
]

ALLOWED_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "151.101.1.69",
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above it
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.0",  # just above it
    "169.253.255.255",
    "223.255.255.255",  # just below multicast
    "2606:4700:4700::1111",
    "2a00:1450:4001:81b::200e",
    "64:ff9b::808:808",  # NAT64 of a public IPv4 address
    "2002:808:808::",  # 6to4 of a public IPv4 address
    "::ffff:8.8.8.8",  # IPv4-mapped public address
]


@pytest.mark.parametrize(("address", "label"), REFUSED_ADDRESSES)
def test_refused_addresses(address: str, label: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == label


@pytest.mark.parametrize(("address", "inner"), EMBEDDING)
def test_ipv6_forms_embedding_a_refused_ipv4_address(address: str, inner: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == f"an IPv6 form of {inner}"


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


# --- host spellings -------------------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0x7f.1",
    "0177.0.0.1",
    "0177.1",
    "017700000001",
    "0x7f.0x0.0x0.0x1",
    "127.0.0.1.",
    "::ffff:127.0.0.1",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_ipv4_spelling_is_read_as_the_address_it_means(host: str) -> None:
    ip = parse_ip_host(host)
    assert ip is not None
    assert refusal(ip) in ("a loopback address", "an IPv6 form of a loopback address")
    assert ip in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::ffff:127.0.0.1"))


@pytest.mark.parametrize(
    ("host", "address"), [("0", "0.0.0.0"), ("0x", "0.0.0.0"), ("1.2.3", "1.2.0.3"), ("8.8.8.8", "8.8.8.8")]
)
def test_ipv4_spellings_other_values(host: str, address: str) -> None:
    assert parse_ip_host(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.1.1.1", "1.2.3.256", "1.2.65536", "4294967296", "08", "1..1"])
def test_malformed_ipv4_hosts_are_invalid_not_names(host: str) -> None:
    with pytest.raises(InvalidHost):
        parse_ip_host(host)


@pytest.mark.parametrize("host", ["example.com", "127.0.0.1.nip.io", "0x7f000001.example", "1e100", "0x1g"])
def test_names_are_left_to_the_resolver(host: str) -> None:
    assert parse_ip_host(host) is None


# --- check_url: URLs, with names resolved from a table --------------------------------------------------

REFUSED_URLS = [
    # (url, code, words the message must contain)
    ("http://127.0.0.1/", "forbidden_address", "a loopback address (127.0.0.1)"),
    ("http://127.0.0.1:8000/v1/models", "forbidden_address", "loopback"),
    ("http://127.9.8.7/", "forbidden_address", "loopback"),
    ("http://127.1/", "forbidden_address", "loopback"),
    ("http://2130706433/", "forbidden_address", "loopback"),
    ("http://0x7f000001/", "forbidden_address", "loopback"),
    ("http://0X7F000001/", "forbidden_address", "loopback"),
    ("http://0177.1/", "forbidden_address", "loopback"),
    ("http://0177.0.0.1/", "invalid_url", "Invalid IPv4"),
    ("http://127.0.0.1./", "forbidden_address", "loopback"),
    ("http://0.0.0.0/", "forbidden_address", "unspecified"),
    ("http://0/", "forbidden_address", "unspecified"),
    ("http://[::1]/", "forbidden_address", "loopback"),
    ("http://[::]/", "forbidden_address", "unspecified"),
    ("http://[0:0:0:0:0:0:0:1]/", "forbidden_address", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "forbidden_address", "an IPv6 form of a loopback address (::ffff:"),
    ("http://[64:ff9b::127.0.0.1]/", "forbidden_address", "an IPv6 form of a loopback address"),
    ("http://[2002:7f00:1::]/", "forbidden_address", "an IPv6 form of a loopback address"),
    ("http://[fe80::1%25eth0]/", "forbidden_address", "link-local"),
    ("http://[fc00::1]/", "forbidden_address", "unique-local"),
    ("http://localhost/", "forbidden_address", "'localhost' is a loopback name"),
    ("http://LOCALHOST./", "forbidden_address", "loopback name"),
    ("http://LocalHost:8000/", "forbidden_address", "loopback name"),
    ("http://api.localhost/", "forbidden_address", "loopback name"),
    ("http://10.0.0.1/", "forbidden_address", "a private address (10.0.0.1)"),
    ("http://172.16.5.4/", "forbidden_address", "private"),
    ("http://192.168.0.1/", "forbidden_address", "private"),
    ("http://100.64.0.1/", "forbidden_address", "carrier-grade NAT"),
    ("http://224.0.0.1/", "forbidden_address", "multicast"),
    ("http://169.254.169.254/latest/meta-data/", "forbidden_address", "the cloud metadata address"),
    ("http://[fd00:ec2::254]/", "forbidden_address", "the cloud metadata address"),
    ("http://metadata.example/latest/meta-data/", "forbidden_address", "'metadata.example' resolves to the cloud"),
    ("http://metadata.google.internal/", "forbidden_address", "metadata"),
    ("http://127.0.0.1.nip.io/", "forbidden_address", "'127.0.0.1.nip.io' resolves to a loopback address"),
    ("http://10.0.0.1.sslip.io/", "forbidden_address", "private"),
    ("http://mixed.example/", "forbidden_address", "'mixed.example' resolves to a private address, which"),
    ("http://mapped.example/", "forbidden_address", "an IPv6 form of a loopback address"),
    ("http://ula.example/", "forbidden_address", "unique-local"),
    ("http://bücher.example/", "forbidden_address", "'xn--bcher-kva.example' resolves to a loopback"),
    ("http://evil@127.0.0.1/", "invalid_url", "credentials"),
    ("http://127.0.0.1@ok.example/", "invalid_url", "credentials"),
    ("http://127.0.0.1\\@ok.example/", "invalid_url", "credentials"),
    ("http://user:pass@ok.example/", "invalid_url", "credentials"),
    ("http://%31%32%37.0.0.1/", "invalid_url", "not a valid IPv4 address"),
    ("http://%6c%6fcalhost/", "invalid_url", "not a valid host name"),
    ("http://ｌｏｃａｌｈｏｓｔ/", "invalid_url", "IDNA"),
    ("http://①②⑦.0.0.1/", "invalid_url", "IDNA"),
    ("http://a..b/", "invalid_url", "not a valid host name"),
    ("http://1.2.3.4.5/", "invalid_url", "not a valid IPv4 address"),
    ("http://ok.example:0/", "invalid_url", "invalid port"),
    ("http://ok.example:99999/", "invalid_url", "invalid port"),
    ("http:///a.wav", "invalid_url", "no host"),
    ("https:ok.example/a.wav", "invalid_url", "no host"),
    ("http://unknown.example/", "unresolvable_host", "could not be resolved"),
    ("file:///etc/passwd", "unsupported_url_scheme", "not 'file:'"),
    ("ftp://ok.example/a.wav", "unsupported_url_scheme", "not 'ftp:'"),
    ("gopher://127.0.0.1:70/", "unsupported_url_scheme", "not 'gopher:'"),
    ("dict://127.0.0.1:11211/", "unsupported_url_scheme", "not 'dict:'"),
    ("ws://ok.example/", "unsupported_url_scheme", "not 'ws:'"),
    ("data:audio/wav;base64,UklGRg==", "unsupported_url_scheme", "not 'data:'"),
    ("javascript:alert(1)", "unsupported_url_scheme", "not 'javascript:'"),
    ("ok.example/a.wav", "unsupported_url_scheme", "without a scheme"),
    ("//ok.example/a.wav", "unsupported_url_scheme", "without a scheme"),
    ("http://ok.example/\t", "invalid_url", "not a valid URL"),
]


@pytest.mark.parametrize(("url", "code", "words"), REFUSED_URLS)
def test_refused_urls(url: str, code: str, words: str) -> None:
    with pytest.raises(FetchError) as err:
        check(url)
    assert (err.value.code, err.value.status) == (code, 400)
    assert words in err.value.message
    assert err.value.message.startswith("audio_url")


def test_messages_show_a_written_address_but_not_what_a_name_resolves_to() -> None:
    """The user may see the address they wrote; an internal name's address stays in the server log."""
    with pytest.raises(FetchError) as err:
        check("http://169.254.169.254/")
    assert err.value.message == (
        "audio_url resolves to the cloud metadata address (169.254.169.254), which is not allowed"
    )
    with pytest.raises(FetchError) as err:
        check("http://metadata.example/")
    assert err.value.message == (
        "audio_url host 'metadata.example' resolves to the cloud metadata address, which is not allowed"
    )


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://2130706433/", "http://[::ffff:127.0.0.1]/", "http://localhost/",
     "http://LOCALHOST./", "http://169.254.169.254/", "file:///etc/passwd", "http://evil@ok.example/"],
)  # fmt: skip
def test_addresses_and_loopback_names_are_refused_without_asking_the_resolver(url: str) -> None:
    resolver = FakeResolver(NAMES)
    with pytest.raises(FetchError):
        check(url, resolver)
    assert resolver.calls == []


@pytest.mark.parametrize(
    ("url", "host", "port", "addresses", "lookups"),
    [
        ("http://ok.example/a.wav", "ok.example", 80, ("93.184.216.34",), [("ok.example", 80)]),
        ("https://OK.Example./a.wav", "ok.example", 443, ("93.184.216.34",), [("ok.example", 443)]),
        ("https://ok6.example:8443/", "ok6.example", 8443, ("2606:2800:220:1:248:1893:25c8:1946",), None),
        ("http://dual.example/", "dual.example", 80, ("2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"), None),
        ("HTTP://93.184.216.34:8080/x", "93.184.216.34", 8080, ("93.184.216.34",), []),
        ("http://[2606:4700:4700::1111]/", "2606:4700:4700::1111", 80, ("2606:4700:4700::1111",), []),
        ("http://1572395042/", "93.184.216.34", 80, ("93.184.216.34",), []),  # decimal spelling
    ],
)
def test_public_urls_pass_the_guard(
    url: str, host: str, port: int, addresses: tuple[str, ...], lookups: list | None
) -> None:
    resolver = FakeResolver(NAMES)
    target = check(url, resolver)
    assert (target.host, target.port, target.addresses) == (host, port, addresses)
    if lookups is not None:
        assert resolver.calls == lookups
    else:
        assert len(resolver.calls) == 1  # resolved once, never twice


@pytest.mark.parametrize(
    ("allowlist", "url", "allowed"),
    [
        (["127.0.0.1:8000"], "http://127.0.0.1:8000/a.wav", True),
        (["127.0.0.1:8000"], "http://2130706433:8000/a.wav", True),  # same address, other spelling
        (["127.0.0.1:8000"], "http://127.0.0.1:8001/a.wav", False),  # other port
        (["127.0.0.1:8000"], "http://localhost:8000/a.wav", False),  # a name is not its address
        (["127.0.0.1"], "http://127.0.0.1:9/a.wav", True),  # no port: any port
        (["audio.test"], "http://AUDIO.test.:1234/a.wav", True),
        (["audio.test:80"], "http://audio.test/a.wav", True),
        (["::1"], "http://[::1]:5/a.wav", True),
        (["[::1]:5"], "http://[::1]:5/a.wav", True),
        (["[::1]:5"], "http://[::1]:6/a.wav", False),
        (["not a host!", "[::1"], "http://[::1]:5/a.wav", False),  # invalid entries never match
        ([], "http://127.0.0.1:8000/a.wav", False),
    ],
)
def test_allowlist(allowlist: list[str], url: str, allowed: bool) -> None:
    if allowed:
        assert check(url, url_fetch_allowlist=allowlist).addresses[0] in ("127.0.0.1", "::1")
    else:
        with pytest.raises(FetchError, match="not allowed"):
            check(url, url_fetch_allowlist=allowlist)


def test_an_allowlisted_name_is_still_resolved_once_and_pinned() -> None:
    resolver = FakeResolver(NAMES)
    target = check("http://audio.test:1234/a.wav", resolver, url_fetch_allowlist=["audio.test"])
    assert target.addresses == ("127.0.0.1",)
    assert resolver.calls == [("audio.test", 1234)]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_the_system_resolver_returns_address_strings(address: str) -> None:
    """The default resolver on numeric hosts only (getaddrinfo answers those without DNS)."""
    assert asyncio.run(system_resolve(address, 80)) == [address]
