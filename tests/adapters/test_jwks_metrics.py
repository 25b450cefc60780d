"""The token verifier's counters: cache hits and misses, JWKS fetches that worked and that failed."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import REGISTRY

from marketplace_provider.adapters.jwks import JwksTokenVerifier
from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.domain.errors import Unavailable


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counters() -> dict[str, float]:
    return {
        "hit": sample("marketplace_token_cache_total", result="hit"),
        "miss": sample("marketplace_token_cache_total", result="miss"),
        "ok": sample("marketplace_jwks_fetches_total", outcome="ok"),
        "failed": sample("marketplace_jwks_fetches_total", outcome="failed"),
    }


def added(before: dict[str, float]) -> dict[str, float]:
    return {name: count - before[name] for name, count in counters().items()}


async def test_a_token_is_verified_once_then_served_from_the_cache() -> None:
    async with TokenKit() as kit:
        verifier = JwksTokenVerifier(jwks_url=kit.jwks_url, issuer=kit.issuer, audience=kit.audience)
        try:
            before = counters()
            token = kit.user_token("icfg_counted")
            for _ in range(3):
                await verifier.verify(token)
            await verifier.verify(kit.system_token("icfg_counted"))
            assert added(before) == {"hit": 2, "miss": 2, "ok": 1, "failed": 0}
        finally:
            await verifier.close()


async def test_a_jwks_that_does_not_answer_is_counted_as_a_failed_fetch() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    async with TokenKit() as kit:
        verifier = JwksTokenVerifier(
            jwks_url=f"http://127.0.0.1:{port}/jwks", issuer=kit.issuer, audience=kit.audience, timeout_seconds=2
        )
        try:
            before = counters()
            with pytest.raises(Unavailable):
                await verifier.verify(kit.user_token("icfg_counted"))
            assert added(before) == {"hit": 0, "miss": 1, "ok": 0, "failed": 1}
        finally:
            await verifier.close()
