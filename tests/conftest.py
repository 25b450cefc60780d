"""Fixtures every test folder may use: Vercel's keys (TokenKit) and Vercel's API (FakeVercel), one of each per
session. (A server is per folder: a session fixture here would serve one folder's settings to all of them.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel


@pytest.fixture(scope="session")
async def token_kit() -> AsyncIterator[TokenKit]:
    async with TokenKit() as kit:
        yield kit


@pytest.fixture(scope="session")
async def fake_vercel() -> AsyncIterator[FakeVercel]:
    fake = FakeVercel()
    await fake.start()
    yield fake
    await fake.stop()
