"""Resource transfers (claim deployments) between installations: create, verify, accept, with a clock the test
moves, so that expiry needs no waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_provider.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.services.common import Ports, RequestKey
from marketplace_provider.domain.services.transfers import Transfers
from marketplace_provider.domain.transfers import ClaimState
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import (
    INSTALLATION,
    NOW,
    RESOURCE,
    a_resource,
    admin,
    an_installation,
    stored,
    system,
)
from tests.support.clock import ManualClock

TARGET = "icfg_target"
IN_AN_HOUR = NOW + timedelta(hours=1)


@pytest.fixture
async def transfers(ports: Ports, storage: Storage) -> Transfers:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(TARGET, billing_plan_id="team-pro"))
        await uow.commit()
    return Transfers(ports)


async def test_a_claim_is_created_verified_and_accepted(transfers: Transfers, storage: Storage, clock: ManualClock) -> None:
    claim = await transfers.create(system(), INSTALLATION, [RESOURCE], IN_AN_HOUR, RequestKey("k", "f"))
    assert (claim.id, claim.state, claim.source_installation_id) == ("claim_1", ClaimState.OPEN, INSTALLATION)
    assert await transfers.create(system(), INSTALLATION, [RESOURCE], IN_AN_HOUR, RequestKey("k", "f")) == claim
    plan = await transfers.verify(system(TARGET), TARGET, claim.id)
    assert plan is not None and plan.id == "team-pro"  # the target's plan, for Vercel to set up
    clock.advance(minutes=5)
    await transfers.accept(system(TARGET), TARGET, claim.id, None)
    assert await stored(storage, RESOURCE, INSTALLATION) is None
    moved = await stored(storage, RESOURCE, TARGET)
    assert moved is not None and (moved.installation_id, moved.updated_at) == (TARGET, NOW + timedelta(minutes=5))
    await transfers.accept(system(TARGET), TARGET, claim.id, None)  # accepted again by the same target: a no-op
    async with storage.unit_of_work() as uow:
        done = await uow.claims.get(claim.id)
    assert done is not None and (done.state, done.target_installation_id) == (ClaimState.COMPLETED, TARGET)


async def test_an_expired_claim_cannot_be_verified(transfers: Transfers, clock: ManualClock) -> None:
    claim_id = f"legacy-claim-{TARGET}"  # the older PUT form names the claim
    await transfers.create(system(), INSTALLATION, [RESOURCE], NOW + timedelta(seconds=1), None, claim_id=claim_id)
    clock.advance(seconds=1)
    with pytest.raises(Conflict, match="expired"):
        await transfers.verify(system(TARGET), TARGET, claim_id)


async def test_a_claim_that_cannot_be_is_refused(transfers: Transfers, storage: Storage) -> None:
    with pytest.raises(Invalid):
        await transfers.create(system(), INSTALLATION, [RESOURCE], NOW, None)
    with pytest.raises(Invalid):
        await transfers.create(system(), INSTALLATION, [RESOURCE, RESOURCE], IN_AN_HOUR, None)
    with pytest.raises(Unprocessable):
        await transfers.create(system(), INSTALLATION, ["res_not_ours"], IN_AN_HOUR, None)
    with pytest.raises(Forbidden):
        await transfers.create(admin(), INSTALLATION, [RESOURCE], IN_AN_HOUR, None)  # Vercel's call, not a person's
    await transfers.create(system(), INSTALLATION, [RESOURCE], IN_AN_HOUR, None, claim_id="tr_1")
    with pytest.raises(Conflict, match="exists"):
        await transfers.create(system(), INSTALLATION, [RESOURCE], IN_AN_HOUR, None, claim_id="tr_1")


async def test_verification_and_acceptance_refusals(transfers: Transfers, storage: Storage) -> None:
    claim = await transfers.create(system(), INSTALLATION, [RESOURCE], IN_AN_HOUR, None)
    with pytest.raises(NotFound):
        await transfers.verify(system(TARGET), TARGET, "claim_unknown")
    with pytest.raises(Conflict, match="already belong"):
        await transfers.verify(system(), INSTALLATION, claim.id)
    with pytest.raises(Conflict, match="not verified"):
        await transfers.accept(system(TARGET), TARGET, claim.id, None)
    await transfers.verify(system(TARGET), TARGET, claim.id)
    async with storage.unit_of_work() as uow:  # the resource went meanwhile
        await uow.resources.save(a_resource(status=ResourceStatus.UNINSTALLED))
        await uow.commit()
    with pytest.raises(Conflict, match="can no longer be transferred"):
        await transfers.accept(system(TARGET), TARGET, claim.id, None)
    with pytest.raises(Conflict, match="can no longer be transferred"):
        await transfers.verify(system(TARGET), TARGET, claim.id)
