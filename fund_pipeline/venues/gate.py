"""Gate USDT perpetuals, known from the public sample only: 8h funding at 00/08/16 UTC."""

from __future__ import annotations

from fund_pipeline.venues.adapter import VenueAdapter, VenueFacts


class GateAdapter(VenueAdapter):
    """Facts only: the project reads this venue from exported files, with no REST or stream."""

    facts = VenueFacts("gate")


ADAPTER = GateAdapter()
