"""The webhook sender port: POST a signed event to a seller's endpoint, within a timeout, never to an
address inside our own networks.

One adapter (HTTP with urllib3, connecting to the very address that was checked). `check_destination` is the SSRF guard: the URL's host is
resolved and every address it resolves to must be a public one (not loopback, private, link-local,
shared, multicast, reserved or unspecified, IPv4-mapped forms included). It runs when an endpoint is
registered and again before every delivery, since a name can be pointed elsewhere later. Redirects are
never followed. `allow_private` (SELLER_WEBHOOK_ALLOW_PRIVATE) lifts the address rule for development
and tests, where receivers run on this machine.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from flask import current_app

EXCERPT_CHARS = 500
READ_LIMIT = 16 * 1024  # bytes of an answer we read at most


class DestinationRefused(Exception):
    """The URL may not receive webhooks; the message is safe to show the seller."""


@dataclass(frozen=True)
class SendResult:
    status_code: int | None  # None: no HTTP answer (refused address, timeout, connection error)
    duration_ms: int
    response_excerpt: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender(Protocol):
    def send(self, url: str, *, body: bytes, headers: dict[str, str]) -> SendResult:
        """POST `body` with `headers`; never raises for the endpoint's failures."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (not address.is_global or address.is_multicast or address.is_private or address.is_loopback
            or address.is_link_local or address.is_reserved or address.is_unspecified)


def check_destination(url: str, *, allow_private: bool, resolve=socket.getaddrinfo) -> list[str]:
    """The addresses `url`'s host resolves to, each of them allowed; DestinationRefused when the URL is
    not an absolute http(s) address of a public host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused("Enter a full address such as https://example.com/webhooks.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("Enter a full address such as https://example.com/webhooks.")
    if parts.username or parts.password:
        raise DestinationRefused("Leave user names and passwords out of the address; check the signature instead.")
    if not allow_private and parts.scheme != "https":
        raise DestinationRefused("Use an https:// address: events are sent only over an encrypted connection.")
    host = parts.hostname
    try:
        infos = resolve(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise DestinationRefused(f"The host {host} could not be found.") from None
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise DestinationRefused(f"The host {host} could not be found.")
    if not allow_private:
        for raw in addresses:
            if _refused(ipaddress.ip_address(raw)):
                raise DestinationRefused(
                    f"The host {host} points to a private or reserved network address; use a public address.")
    return addresses


class HttpWebhookSender:
    """POSTs with urllib3 to the address that was checked (never a second lookup that a DNS change
    could point elsewhere), with the URL's host name for the Host header and for TLS (SNI and
    certificate check)."""

    def __init__(self, *, timeout: float, allow_private: bool, resolve=socket.getaddrinfo,
                 ca_certs: str | None = None) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._resolve = resolve
        self._ca_certs = ca_certs

    def send(self, url: str, *, body: bytes, headers: dict[str, str]) -> SendResult:
        import urllib3

        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            addresses = check_destination(url, allow_private=self.allow_private, resolve=self._resolve)
        except DestinationRefused as exc:
            return SendResult(None, elapsed(), "", str(exc))
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = urllib3.Timeout(connect=min(self.timeout, 5.0), read=self.timeout)
        if secure:
            import certifi

            pool = urllib3.HTTPSConnectionPool(
                addresses[0], port, timeout=timeout, retries=False, maxsize=1, cert_reqs="CERT_REQUIRED",
                ca_certs=self._ca_certs or certifi.where(), server_hostname=parts.hostname,
                assert_hostname=parts.hostname,
            )
        else:
            pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False, maxsize=1)
        try:
            with pool:
                response = pool.urlopen("POST", target, body=body, headers={**headers, "host": parts.netloc},
                                        redirect=False, retries=False, preload_content=False)
                try:
                    raw = response.read(READ_LIMIT, decode_content=True) or b""
                finally:
                    response.release_conn()
        except urllib3.exceptions.TimeoutError:
            return SendResult(None, elapsed(), "", f"No answer within {self.timeout:g} seconds.")
        except urllib3.exceptions.SSLError:
            return SendResult(None, elapsed(), "", "The endpoint's TLS certificate could not be verified.")
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(None, elapsed(), "", f"Could not connect: {type(exc).__name__}.")
        excerpt = raw.decode("utf-8", "replace")[:EXCERPT_CHARS]
        ok = 200 <= response.status < 300
        return SendResult(response.status, elapsed(), excerpt, None if ok else f"The endpoint answered {response.status}.")


def get_webhook_sender() -> WebhookSender:
    config = current_app.config
    return HttpWebhookSender(timeout=float(config.get("SELLER_WEBHOOK_TIMEOUT") or 10.0),
                             allow_private=bool(config.get("SELLER_WEBHOOK_ALLOW_PRIVATE")))


def private_allowed() -> bool:
    return bool(current_app.config.get("SELLER_WEBHOOK_ALLOW_PRIVATE"))
