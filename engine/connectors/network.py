"""The SSRF guard: decides which network addresses a connector may reach.

A connector never connects to a host name. It asks `guard(host, port, policy)`, which
resolves the name exactly once, checks every address it resolves to, and returns the one
address to connect to. Connecting to that address (instead of resolving again) is what
defeats DNS rebinding: the name cannot point somewhere else between check and connect.

Refused whatever the policy says:
- link-local (169.254.0.0/16, fe80::/10) and cloud metadata endpoints (169.254.169.254,
  fd00:ec2::254, ...), unspecified (0.0.0.0/8, ::), multicast, reserved and broadcast;
- the same addresses hidden inside IPv6 (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible,
  NAT64 64:ff9b::/96, 6to4, Teredo) or written in odd IPv4 forms ("2852039166",
  "0xa9fea9fe", "0251.0376.0251.0376", "127.1"), which are normalised the way
  `inet_aton` (and therefore the C library's resolver) reads them.

Set by the platform or an admin:
- loopback is refused unless `allow_loopback` (embedded mode) or it lies in
  `allowed_networks`;
- `denied_networks` are refused; when `allowed_networks` is non-empty it is an allow list:
  any other address is refused;
- `forbidden_endpoints` ("host:port" or "host") are the platform's own database and Redis:
  users must never point a connector at them, even where loopback is allowed.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from engine.connectors.base import CheckCategory
from engine.connectors.errors import ConnectorError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NetworkGuard = Callable[[str, int], Awaitable[str]]

HOST_FIELD = "/host"

# Metadata services answer with cloud credentials; they must never be reachable.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)

# Ranges ipaddress does not flag in a way that suits us.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host"; Linux routes 0.x to local
_NAT64_PREFIXES = (
    ipaddress.ip_network("64:ff9b::/96"),  # RFC 6052 well-known prefix
    ipaddress.ip_network("64:ff9b:1::/48"),  # RFC 8215 local-use prefix
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d form

# Strings that inet_aton may read as an IPv4 address: digits, hex digits, "x" and dots.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class NetworkPolicy(BaseModel):
    """Which addresses connectors may reach. Build one per deployment (see module docs)."""

    allow_loopback: bool = False
    allowed_networks: list[str] = Field(default_factory=list)
    denied_networks: list[str] = Field(default_factory=list)
    forbidden_endpoints: list[str] = Field(default_factory=list)
    dns_timeout_s: float = 5.0

    @field_validator("allowed_networks", "denied_networks")
    @classmethod
    def _valid_cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # raises ValueError on a bad CIDR
        return values

    @field_validator("forbidden_endpoints")
    @classmethod
    def _valid_endpoints(cls, values: list[str]) -> list[str]:
        for value in values:
            parse_endpoint(value)
        return values

    @functools.cached_property
    def _allowed(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.allowed_networks]

    @functools.cached_property
    def _denied(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.denied_networks]


def parse_endpoint(value: str) -> tuple[str, int | None]:
    """Split "host:port", "[v6]:port", "v6" or "host" into (lower-cased host, port or None)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:  # a bare name, IPv4 address or unbracketed IPv6 address
        host, port = value, ""
    if not host:
        raise ValueError(f"endpoint {value!r} has no host")
    return host.lower(), int(port) if port else None


def forbidden_endpoints_from_urls(*urls: str | None) -> list[str]:
    """The "host:port" of each network URL (DATABASE_URL, REDIS_URL); file URLs are skipped."""
    default_ports = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379}
    endpoints = []
    for url in urls:
        if not url:
            continue
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0]
        if scheme in ("sqlite", "file") or not parts.hostname:
            continue  # files and unix sockets: nothing a connector could dial
        port = parts.port or default_ports.get(scheme)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        endpoints.append(f"{host}:{port}" if port else host)
    return endpoints


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, or None when it is a name to resolve.

    Reads IPv4 the way inet_aton does, so "127.1", "2852039166", "0xa9fea9fe" and
    "0251.0376.0251.0376" are recognised for what the C library would connect to.
    """
    host = host.strip().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        found.append(low32)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # ::1 and :: are themselves
        found.append(low32)
    return found


def always_refused_reason(address: IPAddress) -> str | None:
    """Why an address is refused under every policy, or None."""
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata endpoint"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and (
        address.is_reserved or address == ipaddress.IPv4Address("255.255.255.255")
    ):
        return "reserved"
    return None


def refusal_reason(address: IPAddress, policy: NetworkPolicy) -> str | None:
    """Why `policy` refuses `address`, or None.

    An IPv6 address carrying an IPv4 one (::ffff:a.b.c.d, NAT64...) is judged on both: it
    is refused when either is, and passes an allow list when either is listed.
    """
    candidates = [address, *embedded_ipv4(address)]
    for candidate in candidates:
        reason = always_refused_reason(candidate) or _policy_refusal(candidate, policy)
        if reason:
            return reason
    on_loopback = any(c.is_loopback for c in candidates)  # already judged by allow_loopback
    if policy._allowed and not on_loopback and not any(_in(c, policy._allowed) for c in candidates):
        return "outside the allowed networks"
    return None


def _policy_refusal(address: IPAddress, policy: NetworkPolicy) -> str | None:
    if _in(address, policy._denied):
        return "in a denied network"
    if address.is_loopback and not (policy.allow_loopback or _in(address, policy._allowed)):
        return "loopback"
    return None


def _in(address: IPAddress, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    return any(address in net for net in networks if net.version == address.version)


async def guard(host: str, port: int, policy: NetworkPolicy | None = None) -> str:
    """Resolve `host` once, check every address, and return the address to connect to.

    Raises ConnectorError(permission) for a refused address and ConnectorError(dns) for a
    name that does not resolve. With no policy the strict default (no loopback) applies.
    """
    policy = policy or NetworkPolicy()
    if not host or not host.strip():
        raise ConnectorError(CheckCategory.INVALID_CONFIG, "Host is empty.", field=HOST_FIELD)
    addresses = await _resolve(host, port, policy.dns_timeout_s)
    forbidden, forbidden_on_loopback = await _forbidden_addresses(policy, port)
    for address in addresses:
        reason = refusal_reason(address, policy)
        if reason is None and (
            _plain(address) in forbidden
            or (forbidden_on_loopback and _is_loopback(address))
            or _is_forbidden_name(host, port, policy)
        ):
            reason = "the platform's own database or Redis"
        if reason:
            raise ConnectorError(
                CheckCategory.PERMISSION,
                f"Connections to {host}:{port} are not allowed: {address} is {reason}.",
                field=HOST_FIELD,
            )
    return str(_plain(addresses[0]))


def make_network_guard(policy: NetworkPolicy) -> NetworkGuard:
    """A `ConnectorContext.network_guard` bound to `policy`."""

    async def network_guard(host: str, port: int) -> str:
        return await guard(host, port, policy)

    return network_guard


def _plain(address: IPAddress) -> IPAddress:
    """Drop an IPv6 scope id so addresses compare and print plainly."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(str(address).split("%")[0])
    return address


async def _resolve(host: str, port: int, timeout_s: float) -> list[IPAddress]:
    literal = parse_ip_literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        # loop.getaddrinfo runs the blocking resolver in the default executor.
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=timeout_s
        )
    except (TimeoutError, OSError, UnicodeError) as exc:
        raise ConnectorError(
            CheckCategory.DNS, f"Could not resolve host {host!r}: {exc}", field=HOST_FIELD
        ) from exc
    addresses = _unique(ipaddress.ip_address(info[4][0]) for info in infos)
    if not addresses:
        raise ConnectorError(CheckCategory.DNS, f"Host {host!r} has no address.", field=HOST_FIELD)
    return addresses


async def _forbidden_addresses(policy: NetworkPolicy, port: int) -> tuple[set[IPAddress], bool]:
    """Addresses of the forbidden endpoints that apply to `port` (names resolved now), and
    whether one of them is on loopback: then every loopback address reaches it (127.0.0.2
    and ::1 reach a service listening on localhost just as well)."""
    addresses: set[IPAddress] = set()
    for endpoint in policy.forbidden_endpoints:
        f_host, f_port = parse_endpoint(endpoint)
        if f_port is not None and f_port != port:
            continue
        try:
            addresses.update(_plain(a) for a in await _resolve(f_host, port, policy.dns_timeout_s))
        except ConnectorError:
            continue  # a platform host we cannot resolve cannot be reached through it either
    return addresses, any(a.is_loopback for a in addresses)


def _is_forbidden_name(host: str, port: int, policy: NetworkPolicy) -> bool:
    host = host.strip().lower().rstrip(".")
    for endpoint in policy.forbidden_endpoints:
        f_host, f_port = parse_endpoint(endpoint)
        if f_host == host and f_port in (None, port):
            return True
    return False


def _is_loopback(address: IPAddress) -> bool:
    return address.is_loopback or any(a.is_loopback for a in embedded_ipv4(address))


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))
