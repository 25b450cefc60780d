"""Resource transfers between installations: create a claim, verify it for a target, accept it."""

from __future__ import annotations

from datetime import datetime

from marketplace_provider.domain.errors import Conflict, Unprocessable
from marketplace_provider.domain.plans import BillingPlan
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import Ports, RequestKey, active_installation, once
from marketplace_provider.domain.transfers import TransferClaim, check_claim_request, existing, new_claim


class Transfers:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def create(
        self,
        caller: Caller,
        installation_id: str,
        resource_ids: list[str],
        expires_at: datetime,
        key: RequestKey | None,
        claim_id: str | None = None,
    ) -> TransferClaim:
        """`claim_id` is chosen by Vercel in the older PUT form; otherwise we make one up."""
        authorize(caller, Action.CREATE_TRANSFER, installation_id)
        now = self.ports.clock.now()
        check_claim_request(resource_ids, expires_at, now)  # bad input is refused before anything is read
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> TransferClaim:
                await active_installation(uow, installation_id)
                for resource_id in resource_ids:
                    resource = await uow.resources.get(installation_id, resource_id)
                    if resource is None or not resource.is_live:
                        raise Unprocessable(f"resource {resource_id} is not in this installation")
                new_id = claim_id or self.ports.ids.new_id("claim")
                if claim_id is not None and await uow.claims.get(claim_id) is not None:
                    raise Conflict(f"transfer request {claim_id} exists")
                claim = new_claim(
                    claim_id=new_id,
                    source_installation_id=installation_id,
                    resource_ids=resource_ids,
                    expires_at=expires_at,
                    now=now,
                )
                await uow.claims.save(claim)
                return claim

            claim = await once(uow, installation_id, key, TransferClaim, work)
            await uow.commit()
        return claim

    async def verify(self, caller: Caller, installation_id: str, claim_id: str) -> BillingPlan | None:
        """Check that the target installation can take the claim; a plan to set up may come back."""
        authorize(caller, Action.VERIFY_TRANSFER, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            target = await active_installation(uow, installation_id)
            claim = existing(await uow.claims.get(claim_id)).verify_for(installation_id, self.ports.clock.now())
            for resource_id in claim.resource_ids:
                resource = await uow.resources.get(claim.source_installation_id, resource_id)
                if resource is None or not resource.is_live:
                    raise Conflict(f"resource {resource_id} can no longer be transferred")
            await uow.claims.save(claim)
            await uow.commit()
        return self.ports.catalog.plan(target.billing_plan_id) if target.billing_plan_id else None

    async def accept(self, caller: Caller, installation_id: str, claim_id: str, key: RequestKey | None) -> None:
        authorize(caller, Action.ACCEPT_TRANSFER, installation_id)
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> None:
                await active_installation(uow, installation_id)
                now = self.ports.clock.now()
                completed = existing(await uow.claims.get(claim_id)).accept_by(installation_id, now)
                if completed is None:  # accepted before by this target
                    return
                for resource_id in completed.resource_ids:
                    resource = await uow.resources.get(completed.source_installation_id, resource_id)
                    if resource is None or not resource.is_live:
                        raise Conflict(f"resource {resource_id} can no longer be transferred")
                    await uow.resources.save(resource.move_to(installation_id, now))
                await uow.claims.save(completed)

            await once(uow, installation_id, key, type(None), work)
            await uow.commit()

