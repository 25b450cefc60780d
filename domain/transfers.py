"""Resource transfer requests ("claim deployments"): move resources from one installation to another.

A claim is opened by the source installation, verified by a target (which may take it), then accepted by that
target; it expires at the moment Vercel gave."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec
from msgspec.structs import replace

from marketplace_provider.domain.errors import Conflict, Invalid, NotFound

MAX_RESOURCES_PER_CLAIM = 100


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

    def check_open(self, now: datetime) -> TransferClaim:
        """Conflict unless the claim may still be verified or accepted."""
        if self.state is ClaimState.COMPLETED:
            raise Conflict("the transfer request is already completed")
        if now >= self.expires_at:
            raise Conflict("the transfer request has expired")
        return self

    def verify_for(self, target_installation_id: str, now: datetime) -> TransferClaim:
        """The claim once `target` passed verification (the same target again: no change)."""
        self.check_open(now)
        if self.source_installation_id == target_installation_id:
            raise Conflict("the resources already belong to this installation")
        if target_installation_id in self.verified_by:
            return self
        return replace(self, verified_by=(*self.verified_by, target_installation_id))

    def accept_by(self, target_installation_id: str, now: datetime) -> TransferClaim | None:
        """The claim completed for `target`; None when that target accepted it before (a retry)."""
        if self.state is ClaimState.COMPLETED:
            if self.target_installation_id == target_installation_id:
                return None
            raise Conflict("the transfer request was completed for another installation")
        self.check_open(now)
        if target_installation_id not in self.verified_by:
            raise Conflict("the transfer request was not verified for this installation")
        return replace(
            self, state=ClaimState.COMPLETED, target_installation_id=target_installation_id, completed_at=now
        )


def check_claim_request(resource_ids: list[str], expires_at: datetime, now: datetime) -> None:
    """What Vercel asks to transfer: 1 to MAX_RESOURCES_PER_CLAIM distinct resources, until a future moment."""
    if not resource_ids or len(resource_ids) > MAX_RESOURCES_PER_CLAIM:
        raise Invalid.field("resourceIds", f"must list 1 to {MAX_RESOURCES_PER_CLAIM} resources")
    if len(set(resource_ids)) != len(resource_ids):
        raise Invalid.field("resourceIds", "must not repeat a resource")
    if expires_at <= now:
        raise Invalid.field("expiresAt", "must be in the future")


def new_claim(
    *, claim_id: str, source_installation_id: str, resource_ids: list[str], expires_at: datetime, now: datetime
) -> TransferClaim:
    """An open claim on the source installation's resources (Invalid when the request is not one)."""
    check_claim_request(resource_ids, expires_at, now)
    return TransferClaim(
        id=claim_id,
        source_installation_id=source_installation_id,
        resource_ids=tuple(resource_ids),
        expires_at=expires_at,
        state=ClaimState.OPEN,
        created_at=now,
    )


def existing(claim: TransferClaim | None) -> TransferClaim:
    if claim is None:
        raise NotFound("no such transfer request")
    return claim
