"""Dependencies of the routes, as Annotated aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from knowra_worker.errors import Unauthorized
from knowra_worker.instance import Instance
from knowra_worker.store import TaskStore


def get_instance(request: Request) -> Instance:
    inst: Instance = request.app.state.instance
    return inst


InstanceDep = Annotated[Instance, Depends(get_instance)]


def get_store(inst: InstanceDep) -> TaskStore:
    return inst.store


StoreDep = Annotated[TaskStore, Depends(get_store)]


def require_api_key(
    inst: InstanceDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    keys = inst.settings.api_keys
    if not keys:
        return
    given = x_api_key
    if given is None and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if given is None:
        raise Unauthorized("missing API key: send it in the X-API-Key header")
    if not any(secrets.compare_digest(given.encode(), k.encode()) for k in keys):
        raise Unauthorized("wrong API key")
