"""Zeroconf: a browser on the loopback interface finds the advertised service."""

from __future__ import annotations

import asyncio

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from wyoming_orpheus.wyoming_server.discovery import SERVICE_TYPE, Advertiser, default_instance_name


async def browse(name: str, timeout: float = 10.0) -> AsyncServiceInfo | None:
    """Browse _wyoming._tcp on loopback until `name` shows up, then resolve it."""
    found = asyncio.Event()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added and name.startswith(wanted):
            found.set()

    wanted = name + "."
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    browser = AsyncServiceBrowser(zeroconf.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        await asyncio.wait_for(found.wait(), timeout)
        info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
        return info if await info.async_request(zeroconf.zeroconf, 3000) else None
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()


async def test_a_browser_finds_the_service_with_its_port() -> None:
    advertiser = Advertiser("orpheus-test", "127.0.0.1", 10299)
    await advertiser.start()
    try:
        info = await browse("orpheus-test")
        assert info is not None
        assert info.port == 10299
        assert info.parsed_addresses() == ["127.0.0.1"]
    finally:
        await advertiser.stop()


def test_bound_to_all_addresses_it_advertises_a_real_address() -> None:
    # Not started: nothing joins multicast on this machine's other interfaces.
    advertiser = Advertiser("", "0.0.0.0", 10200)
    assert advertiser.address != "0.0.0.0"
    assert advertiser.name == default_instance_name() and advertiser.name.startswith("orpheus-")
