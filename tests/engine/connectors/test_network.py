"""The SSRF guard refuses what a connector must never reach, however the address is written."""

from __future__ import annotations

import pytest

from engine.connectors.base import CheckCategory, ConnectorContext
from engine.connectors.errors import ConnectorError
from engine.connectors.network import (
    NetworkPolicy,
    forbidden_endpoints_from_urls,
    guard,
    make_network_guard,
)

PRODUCTION = NetworkPolicy()  # the strict default: no loopback
EMBEDDED = NetworkPolicy(allow_loopback=True)


async def refused(host: str, policy: NetworkPolicy = EMBEDDED, port: int = 80) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        await guard(host, port, policy)
    assert caught.value.category == CheckCategory.PERMISSION
    assert caught.value.field == "/host"
    return caught.value


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",  # cloud metadata
        "169.254.10.20",  # link-local
        "fe80::1",
        "[fe80::1%25eth0]".replace("%25", "%"),
        "fd00:ec2::254",  # AWS metadata over IPv6
        "0.0.0.0",  # unspecified
        "0.1.2.3",  # "this network"
        "::",
        "224.0.0.1",  # multicast
        "ff02::1",
        "255.255.255.255",
        "::ffff:169.254.169.254",  # IPv4-mapped IPv6
        "[::ffff:a9fe:a9fe]",
        "64:ff9b::169.254.169.254",  # NAT64
        "::169.254.169.254",  # IPv4-compatible IPv6
        "2002:a9fe:a9fe::1",  # 6to4
        "2852039166",  # decimal
        "0251.0376.0251.0376",  # octal
        "0xa9fea9fe",  # hex
        "0xA9.0xFE.0xA9.0xFE",
        "169.254.43518",  # short form
    ],
)
async def test_always_refused_even_when_loopback_is_allowed(host: str) -> None:
    everything_allowed = NetworkPolicy(allow_loopback=True, allowed_networks=["0.0.0.0/0", "::/0"])
    error = await refused(host, everything_allowed)
    assert "not allowed" in error.message


async def test_metadata_refusal_names_the_reason() -> None:
    error = await refused("0xa9fea9fe")
    assert "169.254.169.254" in error.message
    assert "metadata" in error.message


async def test_metadata_host_name_is_refused_when_it_resolves() -> None:
    # The name is only resolvable on cloud machines; elsewhere the guard reports DNS.
    with pytest.raises(ConnectorError) as caught:
        await guard("metadata.google.internal", 80, EMBEDDED)
    assert caught.value.category in (CheckCategory.PERMISSION, CheckCategory.DNS)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1", "2130706433", "localhost", "::1", "::ffff:127.0.0.1"]
)
async def test_loopback_refused_in_production(host: str) -> None:
    error = await refused(host, PRODUCTION)
    assert "loopback" in error.message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "localhost"])
async def test_loopback_allowed_in_embedded_mode(host: str) -> None:
    assert await guard(host, 8080, EMBEDDED) in ("127.0.0.1", "::1")


async def test_short_form_is_normalised_to_the_address_to_dial() -> None:
    assert await guard("127.1", 80, EMBEDDED) == "127.0.0.1"
    assert await guard("0x7f.1", 80, EMBEDDED) == "127.0.0.1"


async def test_public_and_private_addresses_pass_by_default() -> None:
    assert await guard("93.184.216.34", 443, PRODUCTION) == "93.184.216.34"
    assert await guard("10.1.2.3", 5432, PRODUCTION) == "10.1.2.3"


async def test_denied_networks_are_refused() -> None:
    policy = NetworkPolicy(denied_networks=["10.0.0.0/8", "2001:db8::/32"])
    assert "denied" in (await refused("10.20.30.40", policy)).message
    await refused("2001:db8::5", policy)
    assert await guard("192.168.1.10", 80, policy) == "192.168.1.10"


async def test_allowed_networks_are_an_allow_list() -> None:
    policy = NetworkPolicy(allowed_networks=["192.168.0.0/16"])
    assert await guard("192.168.4.4", 80, policy) == "192.168.4.4"
    assert "outside the allowed networks" in (await refused("10.0.0.1", policy)).message


async def test_ipv4_mapped_addresses_follow_the_ipv4_lists() -> None:
    policy = NetworkPolicy(allowed_networks=["192.168.0.0/16"], denied_networks=["192.168.9.0/24"])
    assert await guard("::ffff:192.168.1.1", 80, policy) == "::ffff:c0a8:101"
    await refused("::ffff:192.168.9.1", policy)
    await refused("::ffff:10.0.0.1", policy)


async def test_denied_beats_allowed() -> None:
    policy = NetworkPolicy(allowed_networks=["10.0.0.0/8"], denied_networks=["10.9.0.0/16"])
    assert await guard("10.1.1.1", 80, policy) == "10.1.1.1"
    await refused("10.9.1.1", policy)


async def test_allowed_network_can_open_loopback_in_production() -> None:
    policy = NetworkPolicy(allowed_networks=["127.0.0.0/8"])
    assert await guard("127.0.0.1", 8080, policy) == "127.0.0.1"


async def test_platform_database_and_redis_are_forbidden_even_on_loopback() -> None:
    policy = NetworkPolicy(
        allow_loopback=True,
        forbidden_endpoints=forbidden_endpoints_from_urls(
            "postgres://agg:secret@localhost:5432/agg",
            "redis://127.0.0.1:6379/0",
            "sqlite://data/db",
        ),
    )
    assert policy.forbidden_endpoints == ["localhost:5432", "127.0.0.1:6379"]
    for host, port in [
        ("localhost", 5432),
        ("127.0.0.1", 5432),
        ("127.0.0.2", 6379),
        ("::1", 6379),
    ]:
        error = await refused(host, policy, port)
        assert "platform" in error.message
    # Other ports on loopback stay reachable in embedded mode.
    assert await guard("127.0.0.1", 8080, policy) == "127.0.0.1"


async def test_forbidden_endpoint_without_port_covers_every_port() -> None:
    policy = NetworkPolicy(forbidden_endpoints=["10.0.0.5"])
    await refused("10.0.0.5", policy, 1234)
    assert await guard("10.0.0.6", 1234, policy) == "10.0.0.6"


async def test_unresolvable_name_is_a_dns_error() -> None:
    with pytest.raises(ConnectorError) as caught:
        await guard("no-such-host.invalid", 80, EMBEDDED)
    assert caught.value.category == CheckCategory.DNS


def test_bad_cidr_is_rejected() -> None:
    with pytest.raises(ValueError):
        NetworkPolicy(denied_networks=["10.0.0.0/33"])


async def test_make_network_guard_plugs_into_the_connector_context(tmp_path) -> None:
    ctx = ConnectorContext(data_dir=tmp_path, network_guard=make_network_guard(PRODUCTION))
    assert await ctx.resolve("10.0.0.1", 80) == "10.0.0.1"
    with pytest.raises(ConnectorError):
        await ctx.resolve("127.0.0.1", 80)
