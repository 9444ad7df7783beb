"""Where outbound webhooks may be sent: the URL rules, and the addresses a host may resolve to.

Checked when a hook is registered (:func:`check_url`) and again before every delivery attempt
(:func:`resolve`, by kb.webhook_delivery, which then connects only to the addresses it returned), so a host name
re-pointed at an internal address after registration (DNS rebinding) is refused too.

- http and https only; no user name or password in the URL, no #fragment; only the characters RFC 3986 allows
  (ASCII; international host names as xn--); no card number; at most MAX_URL_CHARS characters.
- Every address the host resolves to must be public: loopback, private, link-local, shared (100.64/10),
  documentation and other reserved ranges are refused unless KB_WEBHOOK_ALLOW_PRIVATE=on. An IPv4 address
  inside an IPv6 one (::ffff:a.b.c.d, 6to4, NAT64, IPv4-compatible) is judged as the IPv4 address.
- Cloud metadata services (METADATA_ADDRESSES, METADATA_HOSTS), multicast and unspecified addresses are refused
  whatever the setting.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from kb.errors import InputError
from kb.redaction import find_pans

MAX_URL_CHARS = 2000
# Characters RFC 3986 allows in a URL (unreserved, reserved and '%'); anything else is refused, not encoded.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# Cloud metadata services, refused even with KB_WEBHOOK_ALLOW_PRIVATE=on: AWS (and its IPv6 and ECS task
# endpoints), GCP, Azure (IMDS and the wire server), Oracle, DigitalOcean (169.254.169.254) and Alibaba.
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "168.63.129.16", "100.100.100.200")
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def address_problem(address: str, allow_private: bool) -> str | None:
    """What makes an IP address unfit to receive webhooks, e.g. 'a loopback address (...)'; None if it is fit."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ('%eth0') names no other address
    except ValueError:
        return "not an IP address"
    if ip.version == 6:  # an IPv4 address inside an IPv6 one is judged as itself: ::ffff:127.0.0.1 is 127.0.0.1
        wrapped = ip in _NAT64 or (ip in _IPV4_COMPATIBLE and not (ip.is_loopback or ip.is_unspecified))
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.packed[-4:] if wrapped else None)
        ip = ipaddress.ip_address(embedded) if embedded else ip
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_multicast or ip.is_unspecified:
        return "not a unicast address"
    if allow_private:
        return None
    for kind, found in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local), ("private", ip.is_private)):
        if found:
            return f"a {kind} address (KB_WEBHOOK_ALLOW_PRIVATE=on allows it)"
    if not ip.is_global:
        return "not a public address (KB_WEBHOOK_ALLOW_PRIVATE=on allows it)"
    return None


def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses host resolves to, each fit to receive webhooks; connect only to these.

    Raises:
        InputError: the host is a metadata name, does not resolve, or any address it resolves to is unfit.
    """
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS:
        raise InputError(f"url: {host} is a cloud metadata host", {"field": "url"})
    try:
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InputError(f"url: host {host} does not resolve ({error})", {"field": "url"}) from None
    addresses = list(dict.fromkeys(str(entry[4][0]) for entry in found))
    for address in addresses:
        problem = address_problem(address, allow_private)
        if problem:
            said = f"{host} is {problem}" if host == address else f"{host} resolves to {address}, {problem}"
            raise InputError(f"url: {said}", {"field": "url"})
    if not addresses:
        raise InputError(f"url: host {host} resolves to no address", {"field": "url"})
    return addresses


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL that passed :func:`check_url`."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.hostname or "", parts.port or (443 if parts.scheme.lower() == "https" else 80)


def check_url(url: object, allow_private: bool) -> str:
    """The URL, stripped, if webhooks may be sent to it (its host resolved and every address checked).

    Raises:
        InputError: naming the field ``url`` and the problem.
    """
    if not isinstance(url, str) or not url.strip():
        raise InputError("url: required, an http:// or https:// address", {"field": "url"})
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise InputError(f"url: longer than {MAX_URL_CHARS} characters", {"field": "url"})
    if not _URL_CHARS.fullmatch(url):
        raise InputError(
            "url: only the characters a URL allows (ASCII, no spaces; percent-encode the rest, xn-- for "
            "international host names)",
            {"field": "url"},
        )
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        raise InputError("url: a % must start an escape such as %2F", {"field": "url"})
    if find_pans(url):
        raise InputError("url: holds a card number", {"field": "url"})
    try:
        parts = urlsplit(url)
        scheme, host, port = split_url(url)
    except ValueError as error:
        raise InputError(f"url: not a valid address ({error})", {"field": "url"}) from None
    if scheme not in ("http", "https"):
        raise InputError(f"url: must start with http:// or https://, not {scheme or 'nothing'}", {"field": "url"})
    if "@" in parts.netloc:
        raise InputError("url: must not carry a user name or password", {"field": "url"})
    if not host:
        raise InputError("url: names no host", {"field": "url"})
    if parts.port == 0:
        raise InputError("url: port 0 is not a port", {"field": "url"})
    if parts.fragment or url.endswith("#"):
        raise InputError("url: must not have a #fragment", {"field": "url"})
    resolve(host, port, allow_private)
    return url
