"""The local exchange emulator: the venues' real REST and WebSocket formats on loopback.

No exchange is reachable from a test machine, so ccxt and the websocket collectors are
pointed at this server instead. It serves the simulated market, deterministically, and never
anything later than its own clock (which may run fast, to see settlements within seconds).
Faults (rate limits, outages, drops, malformed frames ...) are injected on demand.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from typing import Any

import pandas as pd
from aiohttp import web

from fund_pipeline.emulator import rest_api, ws_api
from fund_pipeline.emulator.limits import RateLimits
from fund_pipeline.emulator.state import EmulatorClock, EmulatorState, Faults
from fund_pipeline.venues.registry import SIM_VENUES

log = logging.getLogger(__name__)


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application()
    app[rest_api.STATE] = state
    rest_api.add_rest_routes(app, state)
    ws_api.add_ws_routes(app, state)
    return app


class RunningEmulator:
    """A started emulator; `stop()` it when done."""

    def __init__(self, runner: web.AppRunner, state: EmulatorState, host: str, port: int) -> None:
        self._runner = runner
        self.state = state
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}"

    def ws_url(self, venue: str) -> str:
        self.state.check_venue(venue)
        return f"ws://{self.host}:{self.port}/{venue}/ws"

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 7,
    bases: tuple[str, ...] | list[str] | None = None,
    speed: float = 1.0,
    start: pd.Timestamp | str | None = None,
    faults: Faults | None = None,
    n_extra_bases: int = 0,
    inverse: bool = False,
) -> RunningEmulator:
    """Serve the simulated market on host:port (0 picks a free port) until `stop()`.

    `n_extra_bases` adds synthetic listings (X001, ...) for load tests at hundreds of symbols; `inverse`
    the venues' coin-margined perps (binance COIN-M, bybit inverse, okx BTC-USD-SWAP, deribit BTC-PERPETUAL).
    """
    from fund_pipeline.sources.simulated import SimulatedMarket

    market = SimulatedMarket(
        seed=seed,
        venues=SIM_VENUES,
        bases=tuple(bases) if bases else None,
        n_extra_bases=n_extra_bases,
        inverse=inverse,
    )
    clock = EmulatorClock(start=pd.Timestamp.now(tz="UTC") if start is None else pd.Timestamp(start), speed=speed)
    if bases:
        served_bases = tuple(bases)
    else:
        listed = market.instruments(SIM_VENUES[0], clock.start)
        served_bases = tuple(dict.fromkeys(listed["base"]))
    faults = faults or Faults()
    state = EmulatorState(
        market=market,
        clock=clock,
        faults=faults,
        venues=SIM_VENUES,
        bases=served_bases,
        limits=RateLimits(faults.rate_limit_scale),
    )
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    if not isinstance(server, asyncio.Server):
        raise RuntimeError(f"emulator: no listening socket on {host}:{port}")
    bound_port = server.sockets[0].getsockname()[1]
    return RunningEmulator(runner, state, host, bound_port)


def parse_fault(spec: str) -> tuple[str, Any]:
    """`name=value` to a Faults field and its typed value, e.g. `http_429_first_n=3`, `venue_down=okx,bybit`."""
    name, sep, raw = spec.partition("=")
    known = {f.name: f for f in dataclasses.fields(Faults)}
    if not sep or name not in known:
        raise ValueError(f"--fault {spec!r}: expected NAME=VALUE with NAME one of {sorted(known)}")
    if name in ("venue_down", "refuse_subscribe"):
        return name, frozenset(v.strip() for v in raw.split(",") if v.strip())
    if name == "rate_limits":
        if raw.lower() not in ("1", "0", "true", "false", "on", "off"):
            raise ValueError(f"--fault {spec!r}: rate_limits is on/off")
        return name, raw.lower() in ("1", "true", "on")
    if name == "jump_windows_at":
        return name, pd.Timestamp(raw)
    kind = float if "float" in str(known[name].type) else int
    try:
        return name, kind(raw)
    except ValueError as bad:
        raise ValueError(f"--fault {spec!r}: {name} needs a {kind.__name__}") from bad


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fund-pipeline exchange-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated market it serves")
    parser.add_argument("--speed", type=float, default=1.0, help="emulator seconds per wall second")
    parser.add_argument("--start", default=None, help="emulator start time (UTC); default now")
    parser.add_argument("--bases", default=None, help="comma-separated base assets, e.g. BTC,ETH")
    parser.add_argument("--extra-bases", type=int, default=0, help="synthetic listings X001.. for load tests")
    parser.add_argument(
        "--inverse", action="store_true", help="also list the venues' coin-margined perps (BTC/USD:BTC, ...)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        help="NAME=VALUE, repeatable: " + ", ".join(f.name for f in dataclasses.fields(Faults)),
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        faults = Faults(**dict(parse_fault(spec) for spec in args.fault))
    except ValueError as bad:
        parser.error(str(bad))
    bases = tuple(b.strip().upper() for b in args.bases.split(",") if b.strip()) if args.bases else None

    async def serve() -> None:
        emulator = await start_emulator(
            args.host,
            args.port,
            seed=args.seed,
            bases=bases,
            speed=args.speed,
            start=args.start,
            faults=faults,
            n_extra_bases=args.extra_bases,
            inverse=args.inverse,
        )
        log.info(
            "exchange emulator on %s (REST /<venue>/<the venue's path>, WebSocket /<venue><route>)", emulator.base_url
        )
        try:
            await asyncio.Event().wait()
        finally:
            await emulator.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    return 0
