"""Dependencies of the routes, as Annotated aliases.

They never block, and are coroutines: FastAPI runs a plain function dependency in its thread
pool, a thread hop per dependency per request (a quarter of a small request's cost)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from knowra_worker.errors import Unauthorized
from knowra_worker.instance import Instance
from knowra_worker.store import TaskStore


async def get_instance(request: Request) -> Instance:
    inst: Instance = request.app.state.instance
    return inst


InstanceDep = Annotated[Instance, Depends(get_instance)]


async def get_store(inst: InstanceDep) -> TaskStore:
    return inst.store


StoreDep = Annotated[TaskStore, Depends(get_store)]


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def require_api_key(
    inst: InstanceDep,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """When KNOWRA_API_KEYS is set, the request must carry one of them, in X-API-Key or as
    an `Authorization: Bearer` token."""
    keys = inst.settings.api_keys
    if not keys:
        return
    given = api_key or (bearer.credentials if bearer else None)
    if given is None:
        raise Unauthorized("missing API key: send it in the X-API-Key header")
    if not any(secrets.compare_digest(given.encode(), k.encode()) for k in keys):
        raise Unauthorized("wrong API key")


def document_security(app: FastAPI, keys_required: bool) -> None:
    """Let the OpenAPI schema name the API-key schemes only when keys are configured.

    The routes declare the key through FastAPI's security dependencies, so the generated
    schema always asks for one; without KNOWRA_API_KEYS every route is open, and a schema
    that demands a key (or promises a 401) would not tell the truth.
    """
    if keys_required:
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schema.get("components", {}).pop("securitySchemes", None)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.pop("security", None)
                operation.get("responses", {}).pop("401", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
