"""ClearCache, GetLocalListVersion, SendLocalList (OCPP 1.6 §5.4, §5.10, §5.15; errata 3.23).

Answered from the authorizer (workers/ocpp16/auth): ClearCache is Rejected when the cache is
disabled; GetLocalListVersion is 0 for an empty list; SendLocalList answers Accepted, Failed,
VersionMismatch, or NotSupported while LocalAuthListEnabled is false.
"""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, ClearCacheStatus

from workers.ocpp16.handlers.base import HandlerBase


class LocalAuthHandlers(HandlerBase):
    @on(Action.clear_cache)
    async def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        cleared = await self.ctx.auth.clear_cache()
        status = ClearCacheStatus.accepted if cleared else ClearCacheStatus.rejected
        return call_result.ClearCache(status=status)

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=await self.ctx.auth.local_list_version())

    @on(Action.send_local_list)
    async def on_send_local_list(self, list_version: int, update_type: str,
                                 local_authorization_list: list[dict[str, Any]] | None = None,
                                 **_: Any) -> call_result.SendLocalList:
        entries = local_authorization_list or []
        status = await self.ctx.auth.send_local_list(list_version, update_type, entries)
        return call_result.SendLocalList(status=status)
