"""The venues' REST endpoints, in their real formats, served from the simulated market.

Only what ccxt's `load_markets`, `fetch_funding_rate_history`, `fetch_ohlcv` (perp, spot,
mark, index) and `fetch_open_interest_history` read is emulated, with each venue's field
names, string-encoded numbers, pagination parameters, page limits, history depths, rate limits
and error bodies. URL layout: `/{venue}{the venue's real path}`; one module of routes per venue.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fund_pipeline.emulator import rest_binance, rest_bybit, rest_deribit, rest_hyperliquid, rest_okx
from fund_pipeline.emulator.rest_core import STATE, Handler, fault_middleware

__all__ = ["STATE", "add_rest_routes"]

# Each venue's routes, under the name of the adapter they speak for.
VENUE_ROUTES: dict[str, list[tuple[str, str, Handler]]] = {
    module.ADAPTER.name: module.ROUTES
    for module in (rest_binance, rest_hyperliquid, rest_bybit, rest_okx, rest_deribit)
}


def add_rest_routes(app: web.Application, state: Any) -> None:
    """Mount the served venues' REST routes on `app` and the fault-injecting middleware."""
    app.middlewares.append(fault_middleware)
    for venue in state.venues:
        for method, path, handler in VENUE_ROUTES[venue]:
            app.router.add_route(method, f"/{venue}{path}", handler)
