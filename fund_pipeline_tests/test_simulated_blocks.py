"""The simulated market's shortcuts for long runs give the values of the direct computation, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.sources.simulated import CHUNK_DAYS, SIM_EPOCH, SimulatedMarket

DAY = pd.Timedelta(days=1)


def test_daily_markets_from_a_block_equal_each_day_drawn_alone():
    market = SimulatedMarket(n_extra_bases=280)
    # 300 symbols: a sum over a view of the block rounds differently from a one-day draw's at this size
    for venue in ("binance",):
        for offset in (1, CHUNK_DAYS - 1, CHUNK_DAYS + 5):
            day = SIM_EPOCH + offset * DAY
            summary = market.markets(venue, day)
            # the day's own bars, drawn for that day only: volume over its 24 hours, OI of its last hour
            bars = SimulatedMarket(n_extra_bases=280).bars(venue, day, day + DAY)
            listed = bars[bars["symbol"].isin(summary["symbol"])]
            volume = listed["volume_usd"].to_numpy().reshape(24, -1).sum(axis=0)
            assert len(summary) > 10
            np.testing.assert_array_equal(summary["volume_usd_24h"].to_numpy(), volume)
            closing = listed.groupby("symbol", sort=False)["open_interest_usd"].last()
            np.testing.assert_array_equal(summary["open_interest_usd"].to_numpy(), closing.to_numpy())


def test_a_longer_simulation_gives_the_same_hours():
    start, end = SIM_EPOCH + 3 * DAY, SIM_EPOCH + 5 * DAY
    fresh = SimulatedMarket(n_extra_bases=4)
    expected = fresh.funding_prints("okx", start, end), fresh.bars("okx", start, end)
    ahead = SimulatedMarket(n_extra_bases=4)
    ahead.funding_prints("okx", start, SIM_EPOCH + 3 * CHUNK_DAYS * DAY)
    pd.testing.assert_frame_equal(ahead.funding_prints("okx", start, end), expected[0], check_exact=True)
    pd.testing.assert_frame_equal(ahead.bars("okx", start, end), expected[1], check_exact=True)
