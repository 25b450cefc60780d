"""The Marketplace Partner API: the endpoints Vercel calls (partner-api.md), each a thin call to a use case."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import HttpMethod, MediaType, Response, Router, delete, get, patch, post, put, route
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from marketplace_provider.adapters.http.auth import PATH_ID
from marketplace_provider.adapters.http.schemas import (
    END,
    NO_NUL,
    AcceptTransferIn,
    BillingPlanOut,
    CreateTransferIn,
    CreateTransferOut,
    DeleteInstallationIn,
    ErrorBody,
    FinalizedOut,
    InstallationOut,
    LegacyCreateTransferIn,
    Metadata,
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

# Every id in a path: checked by the `caller` dependency (auth.py) once the token is verified; stated here for the
# OpenAPI document (Litestar checks it again, after the caller, so a bad token still answers 401 first).
ID_PATTERN = PATH_ID.pattern.removesuffix("$") + END  # matched whole, as the caller matches it
PathId = Annotated[str, PathParameter(pattern=ID_PATTERN, min_length=1, max_length=128)]

# The OpenAPI security scheme of the Partner API (app.py registers it): Vercel's OIDC token, a JWT (auth.md).
BEARER_SCHEME = "vercelOidc"


def _errors(texts: dict[int, str]) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(ErrorBody, description=text, generate_examples=False) for status, text in texts.items()}


ERROR_RESPONSES = _errors({
    400: "Input has failed validation",
    401: "Missing or invalid Vercel token",
    403: "The token may not perform this operation",
    404: "Entity not found",
    409: "Conflict with the current state",
    422: "Well-formed but cannot be executed",
    503: "A dependency (storage, Vercel's keys or API) did not answer; retry later",
})
# what a call with a body may earn besides: too large, or not JSON (app.require_json_body)
BODY_ERRORS = ERROR_RESPONSES | _errors({
    413: "The body is larger than the server accepts",
    415: "The body is not application/json",
})
NO_CONTENT = Response(content=None, status_code=HTTP_204_NO_CONTENT)
ID_ITEM = Schema(type=OpenAPIType.STRING, pattern=ID_PATTERN, min_length=1, max_length=128)
METADATA_OBJECT = Schema(  # schemas.Metadata, as the plans' query carries it
    type=OpenAPIType.OBJECT,
    max_properties=100,
    property_names=Schema(type=OpenAPIType.STRING, max_length=128, pattern=NO_NUL),
)


@dataclass
class OptionalBody(Operation):
    """Litestar marks every request body required; a `JSONBody[X | None] = None` handler's may be left out."""

    def __post_init__(self) -> None:
        if self.request_body is not None:
            self.request_body.required = False  # type: ignore[union-attr]


@dataclass
class MetadataQuery(Operation):
    """The plan endpoints' `metadata` query parameter is a JSON-encoded object (the current form values): in
    OpenAPI that is a parameter with `content`, which Litestar does not write by itself."""

    def __post_init__(self) -> None:
        for parameter in self.parameters or []:
            if getattr(parameter, "name", None) == "metadata":
                parameter.schema = None  # type: ignore[union-attr]
                parameter.description = "The current form values, as JSON (at most 8192 characters)"
                parameter.content = {MediaType.JSON: OpenAPIMediaType(schema=METADATA_OBJECT)}  # type: ignore[union-attr]


def _unset(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


def _resource_out(resources: NamedDependency[Resources], resource: Resource) -> ResourceOut:
    return ResourceOut.of(resource, resources.plan_of(resource))


# ---------------------------------------------------------------- installations


@put(INSTALLATION, status_code=HTTP_204_NO_CONTENT, responses=BODY_ERRORS, summary="Upsert installation")
async def upsert_installation(
    installationId: PathId,
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
async def get_installation(installationId: PathId, caller: NamedDependency[Caller], installations: NamedDependency[Installations]) -> InstallationOut:
    view = await installations.get(caller, installationId)
    return InstallationOut(
        billing_plan=BillingPlanOut.of(view.billing_plan) if view.billing_plan else None,
        notification=NotificationOut.of(view.notification),
    )


@patch(INSTALLATION, status_code=HTTP_204_NO_CONTENT, responses=BODY_ERRORS, summary="Update installation (billing plan)")
async def update_installation(
    installationId: PathId,
    data: JSONBody[UpdateInstallationIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    installations: NamedDependency[Installations],
) -> None:
    await installations.change_plan(caller, installationId, data.billing_plan_id, request_key)


@delete(
    INSTALLATION,
    status_code=HTTP_200_OK,
    responses=BODY_ERRORS | {204: ResponseSpec(None, description="Already uninstalled or never installed: nothing left to do")},
    operation_class=OptionalBody,
    summary="Delete installation",
)
async def delete_installation(
    installationId: PathId,
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    installations: NamedDependency[Installations],
    data: JSONBody[DeleteInstallationIn | None] = None,
) -> Response[FinalizedOut]:
    cascade = data.cascade_resource_deletion if data is not None else False
    outcome = await installations.uninstall(caller, installationId, cascade, request_key)
    if outcome.finalized is None:
        return NO_CONTENT  # type: ignore[return-value]  # the annotation documents the 200 body; 204 is in responses=
    return Response(FinalizedOut(finalized=outcome.finalized), status_code=HTTP_200_OK)


# ---------------------------------------------------------------- plans


def _metadata_query(raw: str | None) -> dict[str, Any]:
    """The `metadata` query parameter: a JSON object of the same shape as a body's `metadata` (or nothing)."""
    if raw is None or raw == "":
        return {}
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise Invalid.field("metadata", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise Invalid.field("metadata", "must be a JSON object")
    try:
        return msgspec.convert(value, Metadata)
    except msgspec.ValidationError as exc:  # over 100 fields, a key too long...
        raise Invalid.field("metadata", f"is not valid: {exc}") from None


@get("/v1/products/{productSlug:str}/plans", responses=ERROR_RESPONSES, operation_class=MetadataQuery, summary="List billing plans for a product")
async def product_plans(
    productSlug: PathId,
    caller: NamedDependency[Caller],
    plans: NamedDependency[Plans],
    metadata: Annotated[str | None, QueryParameter(max_length=8192)] = None,
) -> PlansOut:
    _metadata_query(metadata)  # the current form values: checked for shape; prices here don't depend on them
    return PlansOut.of(await plans.for_product(caller, productSlug))


@get(INSTALLATION + "/plans", responses=ERROR_RESPONSES, operation_class=MetadataQuery, summary="List billing plans for an installation")
async def installation_plans(
    installationId: PathId,
    caller: NamedDependency[Caller],
    plans: NamedDependency[Plans],
    metadata: Annotated[str | None, QueryParameter(max_length=8192)] = None,
) -> PlansOut:
    _metadata_query(metadata)
    return PlansOut.of(await plans.for_installation(caller, installationId))


@get(RESOURCE + "/plans", responses=ERROR_RESPONSES, operation_class=MetadataQuery, summary="List billing plans for a resource")
async def resource_plans(
    installationId: PathId,
    resourceId: PathId,
    caller: NamedDependency[Caller],
    plans: NamedDependency[Plans],
    metadata: Annotated[str | None, QueryParameter(max_length=8192)] = None,
) -> PlansOut:
    _metadata_query(metadata)
    return PlansOut.of(await plans.for_resource(caller, installationId, resourceId))


@post(INSTALLATION + "/billing/provision", status_code=HTTP_200_OK, responses=BODY_ERRORS, summary="Provision a prepayment purchase")
async def provision_purchase(
    installationId: PathId,
    data: JSONBody[ProvisionPurchaseIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    purchases: NamedDependency[Purchases],
) -> PurchaseOut:
    return PurchaseOut.of(await purchases.provision(caller, installationId, data.invoice_id, request_key))


# ---------------------------------------------------------------- resources


@post(INSTALLATION + "/resources", status_code=HTTP_200_OK, responses=BODY_ERRORS, summary="Provision resource")
async def provision_resource(
    installationId: PathId,
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
    installationId: PathId,
    caller: NamedDependency[Caller],
    resources: NamedDependency[Resources],
    ids: Annotated[list[str] | None, QueryParameter(name="ids", max_items=100, schema_extra={"items": ID_ITEM})] = None,
) -> ResourcesOut:
    if ids and not all(PATH_ID.fullmatch(i) for i in ids):
        raise Invalid.field("ids", "holds a value that is not a resource id")
    found = await resources.list(caller, installationId, ids)
    return ResourcesOut(resources=[_resource_out(resources, r) for r in found])


@get(RESOURCE, responses=ERROR_RESPONSES, summary="Get resource")
async def get_resource(installationId: PathId, resourceId: PathId, caller: NamedDependency[Caller], resources: NamedDependency[Resources]) -> ResourceOut:
    return _resource_out(resources, await resources.get(caller, installationId, resourceId))


@patch(RESOURCE, status_code=HTTP_200_OK, responses=BODY_ERRORS, summary="Update resource")
async def update_resource(
    installationId: PathId,
    resourceId: PathId,
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
    installationId: PathId, resourceId: PathId, caller: NamedDependency[Caller], request_key: NamedDependency[RequestKey | None], resources: NamedDependency[Resources]
) -> None:
    await resources.delete(caller, installationId, resourceId, request_key)


@post(
    RESOURCE + "/secrets/rotate",
    status_code=HTTP_200_OK,
    responses=BODY_ERRORS | {202: ResponseSpec(RotateSecretsOut, description="Rotation started: the new secrets follow later")},
    operation_class=OptionalBody,
    summary="Request secrets rotation",
)
async def rotate_secrets(
    installationId: PathId,
    resourceId: PathId,
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


@post(RESOURCE + "/repl", status_code=HTTP_200_OK, responses=BODY_ERRORS, summary="Run a REPL command")
async def repl(
    installationId: PathId, resourceId: PathId, data: JSONBody[ReplIn], caller: NamedDependency[Caller], resources: NamedDependency[Resources]
) -> list[dict[str, Any]]:
    outcome = await resources.repl(caller, installationId, resourceId, data.input, data.read_only)
    return msgspec.to_builtins(outcome.blocks)


# ---------------------------------------------------------------- resource transfers


def _epoch(value: int) -> datetime:
    """Epoch milliseconds; the older form's seconds are recognised by being too small to be milliseconds."""
    return datetime.fromtimestamp(value / 1000 if value >= 100_000_000_000 else value, tz=UTC)


@post(TRANSFERS, status_code=HTTP_200_OK, responses=BODY_ERRORS, summary="Create resources transfer request")
async def create_transfer(
    installationId: PathId,
    data: JSONBody[CreateTransferIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    transfers: NamedDependency[Transfers],
) -> CreateTransferOut:
    expires = datetime.fromtimestamp(data.expires_at / 1000, tz=UTC)
    claim = await transfers.create(caller, installationId, list(data.resource_ids), expires, request_key)
    return CreateTransferOut(provider_claim_id=claim.id)


@put(TRANSFERS + "/{providerClaimId:str}", status_code=HTTP_204_NO_CONTENT, responses=BODY_ERRORS, summary="Create transfer request (older form)")
async def create_transfer_legacy(
    installationId: PathId,
    providerClaimId: PathId,
    data: JSONBody[LegacyCreateTransferIn],
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    transfers: NamedDependency[Transfers],
) -> None:
    await transfers.create(
        caller, installationId, list(data.resource_ids), _epoch(data.expiration), request_key, claim_id=providerClaimId
    )


async def _verify(caller: NamedDependency[Caller], installationId: PathId, providerClaimId: PathId, transfers: NamedDependency[Transfers]) -> VerifyTransferOut:
    plan = await transfers.verify(caller, installationId, providerClaimId)
    return VerifyTransferOut(valid=True, billing_plan=BillingPlanOut.of(plan) if plan else None)


@get(TRANSFERS + "/{providerClaimId:str}/verify", responses=ERROR_RESPONSES, summary="Validate resources transfer request")
async def verify_transfer(
    installationId: PathId, providerClaimId: PathId, caller: NamedDependency[Caller], transfers: NamedDependency[Transfers]
) -> VerifyTransferOut:
    return await _verify(caller, installationId, providerClaimId, transfers)


@post(TRANSFERS + "/{providerClaimId:str}/verify", status_code=HTTP_200_OK, responses=ERROR_RESPONSES, summary="Validate transfer (older form)")
async def verify_transfer_legacy(
    installationId: PathId, providerClaimId: PathId, caller: NamedDependency[Caller], transfers: NamedDependency[Transfers]
) -> VerifyTransferOut:
    return await _verify(caller, installationId, providerClaimId, transfers)


@post(
    TRANSFERS + "/{providerClaimId:str}/accept",
    status_code=HTTP_204_NO_CONTENT,
    responses=BODY_ERRORS,
    operation_class=OptionalBody,
    summary="Accept resources transfer",
)
async def accept_transfer(
    installationId: PathId,
    providerClaimId: PathId,
    caller: NamedDependency[Caller],
    request_key: NamedDependency[RequestKey | None],
    transfers: NamedDependency[Transfers],
    data: JSONBody[AcceptTransferIn | None] = None,
) -> None:
    if data is not None and data.target_installation_id not in (None, installationId):
        raise Invalid.field("targetInstallationId", "must be the installation in the path")
    await transfers.accept(caller, installationId, providerClaimId, request_key)


def allow_handlers(handlers: list[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """An OPTIONS handler for each path, naming all of its methods in `Allow`.

    Litestar 2 makes one itself when a path's first handler is registered and keeps it when more methods join
    that path, so its `Allow` names only the first of them (litestar#4169, fixed in Litestar 3)."""
    methods: dict[str, set[str]] = defaultdict(set)
    for handler in handlers:
        for path in handler.paths:
            methods[path] |= set(handler.http_methods)

    def answer(path: str, allow: str) -> HTTPRouteHandler:
        def options() -> Response[None]:
            return Response(content=None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

        return route(path, http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False)(options)

    return [answer(path, ", ".join(sorted(verbs | {"OPTIONS"}))) for path, verbs in methods.items()]


PARTNER_API_HANDLERS: list[HTTPRouteHandler] = [
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
]

partner_api = Router(
    path="/",
    # OPTIONS first: a path that has one when its first handler is registered gets no stale one from Litestar
    route_handlers=[*allow_handlers(PARTNER_API_HANDLERS), *PARTNER_API_HANDLERS],
    tags=["Partner API"],
    security=[{BEARER_SCHEME: []}],
)
