"""Run a whole lab: fleet, SSH listeners, ticker, syslog, control API, state files.

Two ways in:
- `serve(settings)`: the foreground process of `collector lab up`; runs until
  SIGINT/SIGTERM, keeps a pid file and control.json in the state directory.
- `running_lab(...)`: a context manager that runs the lab in a background thread
  with its own event loop, for tests. Everything that touches the model runs on
  that loop; use `RunningLab.call(fn, ...)` to run code there from a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from collector.lab.control import BadFault, ControlOps, ControlServer, LabControl, checked_faults
from collector.lab.inventory_file import write_inventory
from collector.lab.settings import (
    CONTROL_FILE,
    DEFAULT_ROUTERS,
    PID_FILE,
    LabError,
    LabSettings,
    remove_state_files,
    write_json_atomic,
)
from collector.lab.sshserver import PortInUseError, RouterListener, open_listeners
from collector.lab.syslog import SyslogSender, loopback_destination, parse_host_port

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
# Syslog lines sent between two looks at the loop's other work. A clock step can queue
# tens of thousands at once (45 lab seconds of a 5,000-router fleet's traffic); each
# router's SSH answers must not wait for the other routers' syslog, as on a real network.
SYSLOG_TURN = 200
# Random bases for tests stay below Linux's ephemeral range (32768+), where client
# sockets would otherwise collide with our listeners.
_RANDOM_PORT_RANGE = (10000, 32000)
_PORT_ATTEMPTS = 25

T = TypeVar("T")


class LabRuntime:
    """Everything of one running lab, on one asyncio loop."""

    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.fleet: Any = None
        self.listeners: dict[str, RouterListener] = {}
        self.ports: dict[str, int] = {}
        self.control_port: int | None = None
        self.syslog: SyslogSender | None = None
        self._control: ControlServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._wake_ticker = asyncio.Event()  # a clock step: tick and send its syslog now
        self._stopped = asyncio.Event()

    # -- start / stop ---------------------------------------------------------

    async def start(self) -> None:
        from collector.lab.fleet import Fleet  # the model; imported late so a broken model is a clean error

        settings = self.settings
        try:
            self.fleet = Fleet.build(
                settings.routers,
                list(settings.scenarios),
                seed=settings.seed,
                time_scale=settings.time_scale,
                realism=settings.realism,
            )
        except ValueError as exc:
            raise LabError(str(exc)) from None
        self._apply_initial_faults()
        if settings.syslog_to is not None:
            self.fleet.add_syslog_target(*settings.syslog_to)  # routers send here besides their `logging host`s
        self.syslog = SyslogSender()
        try:
            await self._bind()
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            write_inventory(self.fleet, self.ports, settings.inventory_path, seed=settings.seed)
        except BaseException:
            await self.stop()
            raise

    def _apply_initial_faults(self) -> None:
        for name, changes in self.settings.faults.items():
            where = self.settings.faults_where.get(name, "faults")
            router = self.fleet.routers.get(name)
            if router is None:
                raise LabError(f"{where}: unknown router {name!r}")
            try:
                for key, value in checked_faults(router.faults, changes).items():
                    setattr(router.faults, key, value)
            except BadFault as exc:
                raise LabError(f"{where}: {name}: {exc}") from None

    def served(self) -> list[str]:
        return self.settings.served(list(self.fleet.routers))

    async def _bind(self) -> None:
        settings = self.settings
        names = self.served()
        if settings.base_port is not None:
            await self._bind_at(settings.base_port, settings.control_port)
            return
        rng = random.Random()  # private: tests may seed the global generator
        last: OSError | None = None
        for _ in range(_PORT_ATTEMPTS):
            base = rng.randrange(_RANDOM_PORT_RANGE[0], _RANDOM_PORT_RANGE[1] - len(names))
            try:
                await self._bind_at(base, None)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                last = exc
        raise LabError(f"no free port range found for {len(names)} routers: {last}")

    async def _bind_at(self, base_port: int, control_port: int | None) -> None:
        names = self.served()
        top = base_port + len(names) - 1
        if base_port < 1 or top > 65535:
            raise LabError(f"ports {base_port}-{top} are outside 1-65535")
        control_port = base_port - 1 if control_port is None else control_port
        ports = {name: base_port + i for i, name in enumerate(names)}
        if control_port in ports.values():
            raise LabError(f"control port {control_port} collides with a router port")
        control = ControlServer(
            ControlOps(
                self.fleet,
                faults_changed=self._faults_changed,
                rebooted=self._rebooted,
                stepped=self._wake_ticker.set,
                transport_state=self._transport_state,
                ports=ports,
            )
        )
        try:
            await control.start(control_port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(control_port, "control API") from None
            raise
        try:
            self.listeners = await open_listeners(
                ((self.fleet.routers[name], port) for name, port in ports.items()),
                seed=self.settings.seed,
                before_command=self.fleet.tick,
            )
        except BaseException:
            control.close()
            raise
        self._control = control
        self.ports = ports
        self.control_port = control.port

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._control is not None:
            self._control.close()
            self._control = None
        for listener in self.listeners.values():
            listener.close()
        self.listeners = {}
        if self.syslog is not None:
            self.syslog.close()
        self._stopped.set()
        await asyncio.sleep(0)  # let transports run their close callbacks

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- running --------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            try:
                self.fleet.tick()
                await self.pump_syslog()
                for listener in self.listeners.values():
                    if listener.shells:
                        listener.flush_monitor()
            except Exception:  # keep the lab alive; the traceback goes to the lab log
                log.exception("lab tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_ticker.wait(), TICK_SECONDS)
            self._wake_ticker.clear()

    async def pump_syslog(self) -> None:
        """Send the served routers' new syslog lines, in turns between the loop's other work."""
        if self.syslog is None:
            return
        for _sent in self.syslog.pump_in_turns((self.fleet.routers[name] for name in self.ports), SYSLOG_TURN):
            await asyncio.sleep(0)
        for name, router in self.fleet.routers.items():
            if name not in self.ports:  # not served here: another process sends its syslog
                router.drain_syslog()

    def _faults_changed(self, name: str) -> None:
        listener = self.listeners.get(name)
        if listener is not None:
            listener.refresh()

    def _rebooted(self, name: str) -> None:
        listener = self.listeners.get(name)
        if listener is not None:
            listener.drop_sessions()

    def _transport_state(self, name: str) -> Mapping[str, Any]:
        listener = self.listeners.get(name)
        state: dict[str, Any] = {"port": self.ports.get(name)}
        if listener is not None:
            state.update(vars(listener.stats()))
        return state

    def control_info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": "127.0.0.1",
            "control_port": self.control_port,
            "ports": self.ports,
            "inventory": str(self.settings.inventory_path.resolve()),
            "seed": self.settings.seed,
            "time_scale": self.settings.time_scale,
        }


# -- foreground process ----------------------------------------------------------


def serve(settings: LabSettings, on_ready: Callable[[LabRuntime], None] | None = None) -> None:
    """Run the lab in this process until SIGINT/SIGTERM (the body of `lab up`)."""

    async def main() -> None:
        runtime = LabRuntime(settings)
        await runtime.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.request_stop)
        state_dir = settings.state_dir
        pid_file = state_dir / PID_FILE
        control_file = state_dir / CONTROL_FILE
        try:
            pid_file.write_text(f"{os.getpid()}\n")
            # control.json last: its presence tells `lab up --detach` the lab accepts connections.
            write_json_atomic(control_file, runtime.control_info())
            if on_ready is not None:
                on_ready(runtime)
            await runtime.wait_stopped()
        finally:
            await runtime.stop()
            remove_state_files(state_dir)

    asyncio.run(main())


# -- background thread for tests ---------------------------------------------------


@dataclass
class RunningLab:
    """Handle on a lab running in a background thread (see `running_lab`)."""

    fleet: Any
    inventory_path: Path
    control: LabControl
    ports: dict[str, int]
    control_port: int
    state_dir: Path
    settings: LabSettings
    _loop: asyncio.AbstractEventLoop
    _runtime: LabRuntime

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the lab's loop (the model is not thread-safe) and return its result."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=60)

    def port(self, router: str) -> int:
        return self.ports[router]

    def connect_params(self, router: str, device_type: str | None = None) -> dict[str, Any]:
        """Keyword arguments for netmiko's ConnectHandler to reach `router`."""
        model = self.fleet.routers[router]
        return {
            "device_type": device_type or model.platform,
            "host": "127.0.0.1",
            "port": self.ports[router],
            "username": model.username,
            "password": model.password,
            "secret": model.enable_secret,
        }

    @property
    def routers(self) -> list[str]:
        return list(self.ports)

    def listener_stats(self, router: str) -> Any:
        return self.call(lambda: self._runtime.listeners[router].stats())


@contextlib.contextmanager
def running_lab(
    routers: int = DEFAULT_ROUTERS,
    scenarios: Sequence[str] = (),
    time_scale: float = 1.0,
    base_port: int | None = None,
    seed: int = 0,
    syslog_to: str | tuple[str, int] | None = None,
    state_dir: str | Path | None = None,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    realism: str | None = None,
    serve: Sequence[str] = (),
) -> Iterator[RunningLab]:
    """Run a lab in a background thread for the duration of the `with` block.

    `realism` None: the default traits (or COLLECTOR_LAB_REALISM); see topology.REALISM_FEATURES.
    """
    own_dir = state_dir is None
    directory = Path(tempfile.mkdtemp(prefix="collector-lab-")) if own_dir else Path(state_dir)
    if isinstance(syslog_to, str):
        syslog_to = parse_host_port(syslog_to)
    elif syslog_to is not None:
        syslog_to = loopback_destination(*syslog_to)
    settings = LabSettings(
        routers=routers,
        scenarios=tuple(scenarios),
        seed=seed,
        time_scale=time_scale,
        base_port=base_port,
        syslog_to=syslog_to,
        state_dir=directory,
        faults=dict(faults or {}),
        serve=tuple(serve),
        **({"realism": realism} if realism is not None else {}),
    )
    loop = asyncio.new_event_loop()
    runtime = LabRuntime(settings)
    started: Future[None] = Future()

    def run_loop() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            try:
                await runtime.start()
            except BaseException as exc:
                started.set_exception(exc)
                raise
            started.set_result(None)

        try:
            loop.run_until_complete(start())
        except BaseException:
            loop.close()
            return
        loop.run_forever()
        loop.run_until_complete(runtime.stop())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run_loop, name="collector-lab", daemon=True)
    thread.start()
    try:
        started.result(timeout=120)
        control = LabControl("127.0.0.1", runtime.control_port or 0)
        handle = RunningLab(
            fleet=runtime.fleet,
            inventory_path=settings.inventory_path,
            control=control,
            ports=dict(runtime.ports),
            control_port=runtime.control_port or 0,
            state_dir=directory,
            settings=replace(settings, base_port=min(runtime.ports.values(), default=None)),
            _loop=loop,
            _runtime=runtime,
        )
        try:
            yield handle
        finally:
            control.close()
            loop.call_soon_threadsafe(loop.stop)
    finally:
        thread.join(timeout=30)
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)

