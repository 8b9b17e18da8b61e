"""Deribit perpetuals, USDC linear and BTC/ETH inverse: symbols and REST mapping onto ccxt (no stream is collected).

Deribit's formula has no interest component and a dead band: nothing is charged while the premium
stays within ±0.025 % (±0.05 % formerly). Its funding history is an hourly record of the trailing 8h rate; the
settlements are the records on the 8h grid. Public (non-matching-engine) requests: 20 a second.
The inverse perpetuals are `BTC-PERPETUAL` (10 USD a contract) and `ETH-PERPETUAL` (1 USD), margined
and settled in their coin; the linear ones `<BASE>_USDC-PERPETUAL`.
"""

from __future__ import annotations

from typing import Any

from fund_pipeline.domain.predicted import FormulaKind, FundingFormula
from fund_pipeline.venues.adapter import InversePerp, RateLimit, RestSpec, VenueAdapter, VenueFacts


class DeribitAdapter(VenueAdapter):
    # Funding (support centre, "Funding Specifications"): the premium rate (mark vs index) measured continuously,
    # a damper max(0.025 %, P) + min(-0.025 %, P) on each measurement, capped per instrument, expressed per 8h
    # and paid by the time fraction: the band applies per sample, scaled with the interval.
    facts = VenueFacts(
        "deribit",
        quote="USDC",
        funding=FundingFormula(
            0.0, 0.00025, cap=0.005, kind=FormulaKind.DEAD_BAND, clamp_scaled=True, band_per_sample=True
        ),
    )
    rest = RestSpec(
        "deribit",
        {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}},
        funding_page=744,
        ohlcv_page=5000,
        funding_record_h=1.0,
        rate_limits=(RateLimit("non-matching", 20, 1.0),),
    )
    inverse_perps = (InversePerp("BTC", 10.0), InversePerp("ETH", 1.0))

    def native_symbol(self, symbol: str) -> str:
        inverse = self.inverse_perp(symbol)
        if inverse is not None:
            return f"{inverse.base}-PERPETUAL"
        base, _, rest = symbol.partition("/")
        return f"{base}_{rest.partition(':')[0]}-PERPETUAL"

    def unified_symbol(self, native: str) -> tuple[str, str] | None:
        pair, _, kind = native.partition("-")
        if kind != "PERPETUAL":
            return None
        base, _, quote = pair.partition("_")
        if not quote:  # BTC-PERPETUAL: inverse, margined and settled in BTC
            return f"{base}/USD:{base}", base
        return f"{base}/{quote}:{quote}", base

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any] | None:
        return {
            "jsonrpc": "2.0",
            "error": {"code": int(code or (10028 if status == 429 else -32602)), "message": message},
            "testnet": False,
        }


ADAPTER = DeribitAdapter()
