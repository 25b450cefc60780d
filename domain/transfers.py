"""Resource transfer requests ("claim deployments"): move resources from one installation to another."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec
from msgspec.structs import replace

from marketplace_provider.domain.errors import Conflict, NotFound


class ClaimState(enum.Enum):
    OPEN = "open"
    COMPLETED = "completed"


class TransferClaim(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # providerClaimId
    source_installation_id: str
    resource_ids: tuple[str, ...]
    expires_at: datetime
    state: ClaimState
    created_at: datetime
    verified_by: tuple[str, ...] = ()  # target installations that passed verification
    target_installation_id: str | None = None
    completed_at: datetime | None = None


def check_verifiable(claim: TransferClaim | None, now: datetime) -> TransferClaim:
    if claim is None:
        raise NotFound("no such transfer request")
    if claim.state is ClaimState.COMPLETED:
        raise Conflict("the transfer request is already completed")
    if now >= claim.expires_at:
        raise Conflict("the transfer request has expired")
    return claim


def verified(claim: TransferClaim, target_installation_id: str) -> TransferClaim:
    if target_installation_id in claim.verified_by:
        return claim
    return replace(claim, verified_by=(*claim.verified_by, target_installation_id))


def accept(claim: TransferClaim | None, target_installation_id: str, now: datetime) -> TransferClaim | None:
    """The claim after `target` accepts it; None when it was already accepted by that target (a retry)."""
    if claim is None:
        raise NotFound("no such transfer request")
    if claim.state is ClaimState.COMPLETED:
        if claim.target_installation_id == target_installation_id:
            return None
        raise Conflict("the transfer request was completed for another installation")
    check_verifiable(claim, now)
    if target_installation_id not in claim.verified_by:
        raise Conflict("the transfer request was not verified for this installation")
    return replace(
        claim, state=ClaimState.COMPLETED, target_installation_id=target_installation_id, completed_at=now
    )
