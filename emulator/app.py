"""Start one node: the listeners its role has, the faults, and hybrid tasks; stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulator.admin import AdminApi
from emulator.echo import start_echo
from emulator.node import NodeState, crash_later, drift_later, load_start_config, log, start_site
from emulator.proxy import Proxy
from emulator.settings import Settings
from emulator.status import StatusApi

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def access_logged(handle: Handler, path: str) -> Handler:
    """The handler, appending nginx's combined log line for every request to ``path`` (admin_access_log)."""

    async def logged(request: web.BaseRequest) -> web.StreamResponse:
        response = await handle(request)
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        size = response.body_length if hasattr(response, "body_length") else 0
        agent = request.headers.get("User-Agent", "-").replace('"', "'")
        line = (f'{request.remote or "-"} - - [{when}] "{request.method} {request.path_qs} HTTP/'
                f'{request.version.major}.{request.version.minor}" {response.status} {size} "-" "{agent}"\n')
        with open(path, "a", encoding="utf-8") as out:
            out.write(line)
        return response

    return logged


async def run(settings: Settings) -> None:
    state = NodeState(settings)
    runners: list[Any] = []
    closers: list[Any] = []
    role = settings.role
    if settings.echo_listen is not None:
        echo = await start_echo(settings.echo_listen.host, settings.echo_listen.port)
        closers.append(echo.close)
        log(f"echo upstream listening on {settings.echo_listen}")
    if settings.declarative_config and role != "data_plane":
        load_start_config(state, settings.declarative_config)
    dataplanes = None
    cp = None
    if role == "control_plane":
        from emulator.hybrid import ControlPlane

        cp = ControlPlane(state)
        dataplanes = state.registry = cp.registry
        assert settings.cluster_listen is not None
        runners.append(await start_site(cp.app(), settings.cluster_listen, cp.ssl_context()))
        log(f"cluster listener on {settings.cluster_listen} (TLS)")
    if role != "data_plane" and settings.admin_listen is not None:
        admin = AdminApi(state, dataplanes)
        handler = admin.handle if settings.admin_access_log is None else access_logged(admin.handle,
                                                                                          settings.admin_access_log)
        runners.append(await start_site(handler, settings.admin_listen))
        log(f"admin API on {settings.admin_listen}")
    if settings.status_listen is not None:
        runners.append(await start_site(StatusApi(state).handle, settings.status_listen))
        log(f"status API on {settings.status_listen}")
    proxy = None
    if role != "control_plane" and settings.proxy_listen is not None:
        proxy = Proxy(settings, lambda: state.snapshot, state.metrics)
        await proxy.start()
        runners.append(await start_site(proxy.handle, settings.proxy_listen))
        log(f"proxy on {settings.proxy_listen}")
    tasks = []
    if role == "data_plane":
        from emulator.hybrid import DataPlane

        if settings.faults.refuse_cp:
            log("emulator fault: this DP never joins its control plane")
        else:
            tasks.append(asyncio.ensure_future(DataPlane(state).run()))
    if settings.faults.crash_after_seconds is not None:
        crash_later(settings.faults.crash_after_seconds)
    if settings.faults.config_drift_after_seconds is not None and settings.dbless:
        drift_later(state, settings.faults.config_drift_after_seconds)
    log(f"kong {settings.version} node {settings.node_id} started (role {role}, "
        f"database {settings.database})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("stopping")
    for task in tasks:
        task.cancel()
    if cp is not None:
        await cp.close()
    for runner in reversed(runners):
        await runner.cleanup()
    if proxy is not None:
        await proxy.close()
    for close in closers:
        close()
