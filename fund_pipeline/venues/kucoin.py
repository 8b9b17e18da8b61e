"""KuCoin USDT perpetuals, known from the public sample only: its 8h grid starts at 04:00 UTC (04/12/20)."""

from __future__ import annotations

from fund_pipeline.venues.adapter import VenueAdapter, VenueFacts


class KucoinAdapter(VenueAdapter):
    """Facts only: the project reads this venue from exported files, with no REST or stream."""

    facts = VenueFacts("kucoin", settlement_phase_h=4.0)


ADAPTER = KucoinAdapter()
