"""What every use case shares: the ports it is given, idempotent replies, and finding live objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from marketplace_provider.domain.errors import Conflict, NotFound
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.plans import Catalog
from marketplace_provider.domain.resources import Resource
from marketplace_provider.ports.clock import Clock
from marketplace_provider.ports.ids import IdGenerator
from marketplace_provider.ports.storage import Reply, Storage, UnitOfWork

T = TypeVar("T")


class Ports(msgspec.Struct, frozen=True, kw_only=True):
    """The ports a use case may need, built once per process by the entrypoint's container."""

    storage: Storage
    catalog: Catalog
    clock: Clock
    ids: IdGenerator


class RequestKey(msgspec.Struct, frozen=True):
    """An Idempotency-Key and a digest of the request it came with."""

    value: str
    fingerprint: str


async def earlier_reply(
    uow: UnitOfWork, installation_id: str, key: RequestKey | None, result_type: type[T]
) -> Reply | None:
    """The reply this key already produced in this installation (the request is a retry), or None.
    The same key with a different request is a Conflict."""
    if key is None:
        return None
    reply = await uow.replies.lookup(installation_id, key.value, result_type)
    if reply is not None and reply.fingerprint != key.fingerprint:
        raise Conflict("this Idempotency-Key was already used for a different request")
    return reply


async def remember(uow: UnitOfWork, installation_id: str, key: RequestKey | None, result: object) -> None:
    """Keep the reply for retries, in the caller's unit of work: it commits (or not) with the change."""
    if key is not None:
        await uow.replies.save(installation_id, key.value, Reply(fingerprint=key.fingerprint, result=result))


async def once(
    uow: UnitOfWork,
    installation_id: str,
    key: RequestKey | None,
    result_type: type[T],
    work: Callable[[], Awaitable[T]],
) -> T:
    """Run `work` unless this key already produced a reply in this installation; then replay that reply.

    Failures are not remembered: a retry after an error tries again. The reply is saved in the caller's
    unit of work, so it commits (or rolls back) together with the change it describes.
    """
    reply = await earlier_reply(uow, installation_id, key, result_type)
    if reply is not None:
        return reply.result  # type: ignore[return-value]
    result = await work()
    await remember(uow, installation_id, key, result)
    return result


async def active_installation(uow: UnitOfWork, installation_id: str) -> Installation:
    installation = await uow.installations.get(installation_id)
    if installation is None or not installation.is_active:
        raise NotFound(f"installation {installation_id} not found")
    return installation


async def live_resource(uow: UnitOfWork, installation_id: str, resource_id: str) -> Resource:
    resource = await uow.resources.get(installation_id, resource_id)
    if resource is None or not resource.is_live:
        raise NotFound(f"resource {resource_id} not found")
    return resource
