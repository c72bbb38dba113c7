"""bot.feeds.guard: which addresses an untrusted feed may reach."""

from __future__ import annotations

import ipaddress

import pytest

from bot.feeds.guard import (
    AddressRefused,
    GuardedBackend,
    address_policy,
    check_host,
    hop_policy,
    is_metadata_address,
    is_public_address,
    literal_address,
    normalise_url,
    not_metadata,
)


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


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2852039166", "169.254.169.254"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_literal_address_reads_every_ipv4_spelling(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["localhost", "wire.test", "127.0.0.1 x", "08.0.0.1", "1.2.3.4.5"])
def test_names_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


def test_normalise_url_writes_numeric_hosts_as_dotted_quads() -> None:
    assert normalise_url("http://0177.0.0.1:8080/a?b=1") == "http://127.0.0.1:8080/a?b=1"
    assert normalise_url("http://u:p@2852039166/x") == "http://u:p@169.254.169.254/x"
    unchanged_urls = (
        "http://127.0.0.1/x",
        "http://wire.test/feed",
        "/relative",
        "http://[::1]/",
        "http://[nope/",
    )
    for unchanged in unchanged_urls:
        assert normalise_url(unchanged) == unchanged


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.170.2",
        "169.254.0.1",
        "fd00:ec2::254",
        "100.100.100.200",
        "fe80::1",
        "::ffff:169.254.169.254",
        "::169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
    ],
)
def test_metadata_addresses(address: str) -> None:
    assert is_metadata_address(ipaddress.ip_address(address))
    assert not not_metadata(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "::1", "8.8.8.8"])
def test_private_but_not_metadata(address: str) -> None:
    assert not is_metadata_address(ipaddress.ip_address(address))


def test_hop_policy_allows_only_the_named_metadata_address() -> None:
    named = ipaddress.ip_address("169.254.169.254")
    policy = hop_policy(not_metadata, named)
    assert policy(named)
    assert not policy(ipaddress.ip_address("169.254.170.2"))
    assert policy(ipaddress.ip_address("10.0.0.1"))
    assert hop_policy(not_metadata, ipaddress.ip_address("10.0.0.1")) is not_metadata
    assert hop_policy(not_metadata, None) is not_metadata


async def test_the_backend_checks_the_address_it_connects_to() -> None:
    backend = GuardedBackend()
    with address_policy(not_metadata), pytest.raises(AddressRefused, match="cloud metadata"):
        await backend.connect_tcp("2852039166", 80, timeout=1.0)
    with address_policy(is_public_address), pytest.raises(AddressRefused, match="not public"):
        await backend.connect_tcp("localhost", 80, timeout=1.0)
