"""bot.feeds.guard: which addresses an untrusted feed may reach."""

from __future__ import annotations

import ipaddress

import pytest

from bot.feeds.guard import AddressRefused, check_host, is_public_address


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "196.200.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"],
)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "192.0.2.1",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
        "ff02::1",
    ],
)
def test_private_and_special_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


async def test_check_host_resolves_names_and_literals() -> None:
    with pytest.raises(AddressRefused, match="refused address"):
        await check_host("localhost", 80, is_public_address)
    with pytest.raises(AddressRefused, match=r"refused address 10\.0\.0\.1"):
        await check_host("10.0.0.1", 80, is_public_address)
    with pytest.raises(AddressRefused):
        await check_host("[::1]", 80, is_public_address)
    addresses = await check_host("127.0.0.1", 80, lambda _address: True)
    assert addresses == [ipaddress.ip_address("127.0.0.1")]
