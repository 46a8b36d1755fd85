"""Zeroconf advertisement of the Wyoming service for Home Assistant."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def default_instance_name() -> str:
    """Return `orpheus-<hostname>`, readable in Home Assistant's discovery list."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"orpheus-{host}"


def lan_address() -> str:
    """Find the address other machines reach this one at (no packet is sent)."""
    # NOTE: wyoming's own helper advertises 0.0.0.0 verbatim when bound to all addresses,
    # which no client can use; ask the routing table which source address mDNS would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_MDNS_GROUP, 5353))
            address = str(probe.getsockname()[0])
        except OSError:
            address = "127.0.0.1"
    return address


class Advertiser:
    """Registers `<name>._wyoming._tcp.local.` and removes it again on shutdown."""

    def __init__(self, name: str, host: str, port: int) -> None:
        bound_to_all = host in ("", "0.0.0.0", "::")
        self.address = lan_address() if bound_to_all else host
        ipaddress.IPv4Address(self.address)  # zeroconf advertises IPv4 here; fail early
        self.name = name or default_instance_name()
        # When bound to one address, mDNS goes out only on that interface (tests: loopback).
        self._interfaces: InterfaceChoice | list[str] = (
            InterfaceChoice.All if bound_to_all else [self.address]
        )
        self._zeroconf: AsyncZeroconf | None = None
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.address)],
            port=port,
            server=f"{self.name}.local.",
        )

    async def start(self) -> None:
        """Join mDNS on the chosen interfaces and register the service."""
        self._zeroconf = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        await self._zeroconf.async_register_service(self._info)
        _LOGGER.info("Zeroconf: advertising %s at %s:%d", self.name, self.address, self._info.port)

    async def stop(self) -> None:
        """Unregister the service and close zeroconf."""
        if self._zeroconf is not None:
            goodbyes = await self._zeroconf.async_unregister_service(self._info)
            # NOTE: the first await only queues the goodbye packets; closing before they are
            # sent left Home Assistant listing the service until its records expired.
            try:
                await asyncio.wait_for(goodbyes, 5)
            except TimeoutError:
                _LOGGER.warning("Zeroconf: goodbye packets not sent within 5 s")
            await self._zeroconf.async_close()
            self._zeroconf = None
