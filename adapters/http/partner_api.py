"""The Marketplace Partner API: the endpoints Vercel calls (partner-api.md), each a thin call to a use case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Response, Router, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from marketplace_provider.adapters.http.auth import PATH_ID
from marketplace_provider.adapters.http.schemas import (
    AcceptTransferIn,
    CreateTransferIn,
    CreateTransferOut,
    DeleteInstallationIn,
    ErrorBody,
    FinalizedOut,
    InstallationOut,
    LegacyCreateTransferIn,
    NotificationOut,
    PlansOut,
    ProvisionedOut,
    ProvisionPurchaseIn,
    ProvisionResourceIn,
    PurchaseOut,
    ReplIn,
    ResourceOut,
    ResourcesOut,
    RotateSecretsIn,
    RotateSecretsOut,
    SecretOut,
    UpdateInstallationIn,
    UpdateResourceIn,
    UpsertInstallationIn,
    BillingPlanOut,
    VerifyTransferOut,
)
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.installations import Account, Contact, Credentials, InstallationDetails
from marketplace_provider.domain.resources import ProvisionRequest, Resource, ResourceChanges, ResourceStatus
from marketplace_provider.domain.roles import Caller
from marketplace_provider.domain.services.common import RequestKey
from marketplace_provider.domain.services.installations import Installations
from marketplace_provider.domain.services.plans import Plans
from marketplace_provider.domain.services.purchases import Purchases
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.domain.services.transfers import Transfers

INSTALLATION = "/v1/installations/{installationId:str}"
RESOURCE = INSTALLATION + "/resources/{resourceId:str}"
TRANSFERS = INSTALLATION + "/resource-transfer-requests"
ERROR_RESPONSES = {
    status: ResponseSpec(ErrorBody, description=text, generate_examples=False)
    for status, text in {
        400: "Input has failed validation",
        401: "Missing or invalid Vercel token",
        403: "The token may not perform this operation",
        404: "Entity not found",
        409: "Conflict with the current state",
        422: "Well-formed but cannot be executed",
    }.items()
}
NO_CONTENT = Response(content=None, status_code=HTTP_204_NO_CONTENT)


def _unset(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


def _resource_out(resources: NamedDependency[Resources], resource: Resource) -> ResourceOut:
    return ResourceOut.of(resource, resources.plan_of(resource))


# ---------------------------------------------------------------- installations


@put(INSTALLATION, status_code=HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES, summary="Upsert installation")
async def upsert_installation(
    installationId: FromPath[str],
    data: JSONBody[UpsertInstallationIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    installations: NamedDependency[Installations],
) -> None:
    account = None
    if data.account is not None:
        contact = data.account.contact
        account = Account(
            url=data.account.url,
            name=data.account.name,
            contact=Contact(email=contact.email, name=contact.name) if contact else None,
        )
    details = InstallationDetails(
        scopes=tuple(data.scopes),
        accepted_policies=dict(data.accepted_policies),
        credentials=Credentials(access_token=data.credentials.access_token, token_type=data.credentials.token_type),
        account=account,
    )
    await installations.upsert(caller, installationId, details, request_key)


@get(INSTALLATION, responses=ERROR_RESPONSES, summary="Get installation")
async def get_installation(installationId: FromPath[str], caller: NamedDependency[Caller], installations: NamedDependency[Installations]) -> InstallationOut:
    view = await installations.get(caller, installationId)
    return InstallationOut(
        billing_plan=BillingPlanOut.of(view.billing_plan) if view.billing_plan else None,
        notification=NotificationOut.of(view.notification),
    )


@patch(INSTALLATION, status_code=HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES, summary="Update installation (billing plan)")
async def update_installation(
    installationId: FromPath[str],
    data: JSONBody[UpdateInstallationIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    installations: NamedDependency[Installations],
) -> None:
    await installations.change_plan(caller, installationId, data.billing_plan_id, request_key)


@delete(INSTALLATION, status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Delete installation")
async def delete_installation(
    installationId: FromPath[str],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    installations: NamedDependency[Installations],
    data: JSONBody[DeleteInstallationIn | None] = None,
) -> Response[FinalizedOut]:
    cascade = data.cascade_resource_deletion if data is not None else False
    outcome = await installations.uninstall(caller, installationId, cascade, request_key)
    if outcome.finalized is None:
        return NO_CONTENT
    return Response(FinalizedOut(finalized=outcome.finalized), status_code=HTTP_200_OK)


# ---------------------------------------------------------------- plans


def _metadata_query(raw: str | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise Invalid.field("metadata", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise Invalid.field("metadata", "must be a JSON object")
    return value


@get("/v1/products/{productSlug:str}/plans", responses=ERROR_RESPONSES, summary="List billing plans for a product")
async def product_plans(
    productSlug: FromPath[str],
    caller: NamedDependency[Caller],
    plans: NamedDependency[Plans],
    metadata: Annotated[str | None, QueryParameter(max_length=8192)] = None,
) -> PlansOut:
    _metadata_query(metadata)  # the current form values: checked for shape; prices here don't depend on them
    return PlansOut.of(await plans.for_product(caller, productSlug))


@get(INSTALLATION + "/plans", responses=ERROR_RESPONSES, summary="List billing plans for an installation")
async def installation_plans(
    installationId: FromPath[str],
    caller: NamedDependency[Caller],
    plans: NamedDependency[Plans],
    metadata: Annotated[str | None, QueryParameter(max_length=8192)] = None,
) -> PlansOut:
    _metadata_query(metadata)
    return PlansOut.of(await plans.for_installation(caller, installationId))


@get(RESOURCE + "/plans", responses=ERROR_RESPONSES, summary="List billing plans for a resource")
async def resource_plans(
    installationId: FromPath[str],
    resourceId: FromPath[str],
    caller: NamedDependency[Caller],
    plans: NamedDependency[Plans],
    metadata: Annotated[str | None, QueryParameter(max_length=8192)] = None,
) -> PlansOut:
    _metadata_query(metadata)
    return PlansOut.of(await plans.for_resource(caller, installationId, resourceId))


@post(INSTALLATION + "/billing/provision", status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Provision a prepayment purchase")
async def provision_purchase(
    installationId: FromPath[str],
    data: JSONBody[ProvisionPurchaseIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    purchases: NamedDependency[Purchases],
) -> PurchaseOut:
    return PurchaseOut.of(await purchases.provision(caller, installationId, data.invoice_id, request_key))


# ---------------------------------------------------------------- resources


@post(INSTALLATION + "/resources", status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Provision resource")
async def provision_resource(
    installationId: FromPath[str],
    data: JSONBody[ProvisionResourceIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    resources: NamedDependency[Resources],
) -> ProvisionedOut:
    request = ProvisionRequest(
        product_id=data.product_id,
        name=data.name,
        metadata=data.metadata,
        billing_plan_id=data.billing_plan_id,
        external_id=data.external_id,
        protocol_settings=data.protocol_settings,
    )
    resource = await resources.provision(caller, installationId, request, request_key)
    out = _resource_out(resources, resource)
    return ProvisionedOut(
        **{f: getattr(out, f) for f in out.__struct_fields__}, secrets=[SecretOut.of(s) for s in resource.secrets]
    )


@get(INSTALLATION + "/resources", responses=ERROR_RESPONSES, summary="List resources")
async def list_resources(
    installationId: FromPath[str],
    caller: NamedDependency[Caller],
    resources: NamedDependency[Resources],
    ids: Annotated[list[str] | None, QueryParameter(name="ids", max_items=100)] = None,
) -> ResourcesOut:
    if ids and not all(PATH_ID.fullmatch(i) for i in ids):
        raise Invalid.field("ids", "holds a value that is not a resource id")
    found = await resources.list(caller, installationId, ids)
    return ResourcesOut(resources=[_resource_out(resources, r) for r in found])


@get(RESOURCE, responses=ERROR_RESPONSES, summary="Get resource")
async def get_resource(installationId: FromPath[str], resourceId: FromPath[str], caller: NamedDependency[Caller], resources: NamedDependency[Resources]) -> ResourceOut:
    return _resource_out(resources, await resources.get(caller, installationId, resourceId))


@patch(RESOURCE, status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Update resource")
async def update_resource(
    installationId: FromPath[str],
    resourceId: FromPath[str],
    data: JSONBody[UpdateResourceIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    resources: NamedDependency[Resources],
) -> ResourceOut:
    status = _unset(data.status)
    changes = ResourceChanges(
        name=_unset(data.name),
        metadata=_unset(data.metadata),
        billing_plan_id=_unset(data.billing_plan_id),
        status=ResourceStatus(status) if status else None,
        protocol_settings=_unset(data.protocol_settings),
    )
    resource = await resources.update(caller, installationId, resourceId, changes, request_key)
    return _resource_out(resources, resource)


@delete(RESOURCE, status_code=HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES, summary="Delete resource")
async def delete_resource(
    installationId: FromPath[str], resourceId: FromPath[str], caller: NamedDependency[Caller], request_key: NamedDependency[RequestKey | None], resources: NamedDependency[Resources]
) -> None:
    await resources.delete(caller, installationId, resourceId, request_key)


@post(RESOURCE + "/secrets/rotate", status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Request secrets rotation")
async def rotate_secrets(
    installationId: FromPath[str],
    resourceId: FromPath[str],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    resources: NamedDependency[Resources],
    data: JSONBody[RotateSecretsIn | None] = None,
) -> Response[RotateSecretsOut]:
    data = data or RotateSecretsIn()
    rotation = await resources.rotate_secrets(
        caller, installationId, resourceId, data.reason, data.delay_old_secrets_expiration_hours, request_key
    )
    if not rotation.sync:
        return Response(RotateSecretsOut(sync=False), status_code=HTTP_202_ACCEPTED)
    out = RotateSecretsOut(
        sync=True, secrets=[SecretOut.of(s) for s in rotation.secrets], partial=rotation.partial or None
    )
    return Response(out, status_code=HTTP_200_OK)


@post(RESOURCE + "/repl", status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Run a REPL command")
async def repl(
    installationId: FromPath[str], resourceId: FromPath[str], data: JSONBody[ReplIn], caller: NamedDependency[Caller], resources: NamedDependency[Resources]
) -> list[dict[str, Any]]:
    outcome = await resources.repl(caller, installationId, resourceId, data.input, data.read_only)
    return msgspec.to_builtins(outcome.blocks)


# ---------------------------------------------------------------- resource transfers


def _epoch(value: int) -> datetime:
    """Epoch milliseconds; the older form's seconds are recognised by being too small to be milliseconds."""
    return datetime.fromtimestamp(value / 1000 if value >= 100_000_000_000 else value, tz=UTC)


@post(TRANSFERS, status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Create resources transfer request")
async def create_transfer(
    installationId: FromPath[str],
    data: JSONBody[CreateTransferIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    transfers: NamedDependency[Transfers],
) -> CreateTransferOut:
    expires = datetime.fromtimestamp(data.expires_at / 1000, tz=UTC)
    claim = await transfers.create(caller, installationId, list(data.resource_ids), expires, request_key)
    return CreateTransferOut(provider_claim_id=claim.id)


@put(TRANSFERS + "/{providerClaimId:str}", status_code=HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES, summary="Create transfer request (older form)")
async def create_transfer_legacy(
    installationId: FromPath[str],
    providerClaimId: FromPath[str],
    data: JSONBody[LegacyCreateTransferIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    transfers: NamedDependency[Transfers],
) -> None:
    await transfers.create(
        caller, installationId, list(data.resource_ids), _epoch(data.expiration), request_key, claim_id=providerClaimId
    )


async def _verify(caller: NamedDependency[Caller], installationId: FromPath[str], providerClaimId: FromPath[str], transfers: NamedDependency[Transfers]) -> VerifyTransferOut:
    plan = await transfers.verify(caller, installationId, providerClaimId)
    return VerifyTransferOut(valid=True, billing_plan=BillingPlanOut.of(plan) if plan else None)


@get(TRANSFERS + "/{providerClaimId:str}/verify", responses=ERROR_RESPONSES, summary="Validate resources transfer request")
async def verify_transfer(
    installationId: FromPath[str], providerClaimId: FromPath[str], caller: NamedDependency[Caller], transfers: NamedDependency[Transfers]
) -> VerifyTransferOut:
    return await _verify(caller, installationId, providerClaimId, transfers)


@post(TRANSFERS + "/{providerClaimId:str}/verify", status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Validate transfer (older form)")
async def verify_transfer_legacy(
    installationId: FromPath[str], providerClaimId: FromPath[str], caller: NamedDependency[Caller], transfers: NamedDependency[Transfers]
) -> VerifyTransferOut:
    return await _verify(caller, installationId, providerClaimId, transfers)


@post(TRANSFERS + "/{providerClaimId:str}/accept", status_code=HTTP_204_NO_CONTENT, responses=ERROR_RESPONSES, summary="Accept resources transfer")
async def accept_transfer(
    installationId: FromPath[str],
    providerClaimId: FromPath[str],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    transfers: NamedDependency[Transfers],
    data: JSONBody[AcceptTransferIn | None] = None,
) -> None:
    if data is not None and data.target_installation_id not in (None, installationId):
        raise Invalid.field("targetInstallationId", "must be the installation in the path")
    await transfers.accept(caller, installationId, providerClaimId, request_key)


partner_api = Router(
    path="/",
    route_handlers=[
        upsert_installation,
        get_installation,
        update_installation,
        delete_installation,
        product_plans,
        installation_plans,
        resource_plans,
        provision_purchase,
        provision_resource,
        list_resources,
        get_resource,
        update_resource,
        delete_resource,
        rotate_secrets,
        repl,
        create_transfer,
        create_transfer_legacy,
        verify_transfer,
        verify_transfer_legacy,
        accept_transfer,
    ],
    tags=["Partner API"],
)
