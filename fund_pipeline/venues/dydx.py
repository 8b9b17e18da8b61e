"""dYdX v4 perpetuals, known from the public sample only: hourly funding, quoted in USD."""

from __future__ import annotations

from fund_pipeline.venues.adapter import VenueAdapter, VenueFacts


class DydxAdapter(VenueAdapter):
    """Facts only: the project reads this venue from exported files, with no REST or stream."""

    facts = VenueFacts("dydx", default_interval_h=1.0, quote="USD")


ADAPTER = DydxAdapter()
