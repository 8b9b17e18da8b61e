"""liquidations and liquidations_hourly through dg.materialize on a temporary DuckDB and landing zone."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fund_pipeline.defs.market.liquidations import liquidations, liquidations_hourly, typed
from fund_pipeline.domain.liquidations import LONG, Liquidation, liquidations_frame
from fund_pipeline.live.landing import SegmentWriter, liquidations_table, list_rejected
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.sim_liquidations import LIQUIDATION_VENUES, simulated_liquidations
from fund_pipeline.sources.simulated import SimulatedMarket

BASES = ("BTC", "ETH")
DAY = pd.Timestamp("2025-02-10", tz="UTC")
NEXT = DAY + pd.Timedelta(days=1)


def test_a_day_without_liquidations_types_the_table(tmp_path):
    """An empty first partition creates text columns, so the next day's rows go in."""
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    day = {"ts": (DAY, NEXT)}
    assert warehouse.replace_partitions("liquidations", [(typed(liquidations_frame([])), day)]) == 0
    row = Liquidation("okx", "BTC/USDT:USDT", "BTC", DAY.value + 5, 0, LONG, 97_000.0, 0.01, 970.0, "sim")
    assert warehouse.replace_partitions("liquidations", [(typed(liquidations_frame([row])), day)]) == 1
    assert warehouse.read("liquidations")["venue"].tolist() == ["okx"]


# A simulated day, two materialisations and three plots: ~10 s on a quiet 2-core machine.
@pytest.mark.slow
def test_liquidation_assets_store_what_they_report(tmp_path):
    market = SimulatedMarket(bases=BASES)
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    for venue in LIQUIDATION_VENUES:
        warehouse.replace("market_bars", market.bars(venue, DAY, NEXT), {"venue": [venue]})
    sim = pd.concat([simulated_liquidations(market, v, DAY, NEXT) for v in LIQUIDATION_VENUES])
    again = sim.iloc[0]  # a live report of a liquidation the history also has: stored once
    live = [
        Liquidation(again.venue, again.symbol, again.base, again.ts.value, 5, again.side, again.price,
                    again.quantity, again.notional_usd, "ws"),
        Liquidation("bybit", "BTC/USDT:USDT", "BTC", (DAY + pd.Timedelta(hours=3)).value, 7, LONG, 97_000.0, 2.0,
                    194_000.0, "ws"),
    ]  # fmt: skip
    writer = SegmentWriter(tmp_path / "landing")
    try:
        writer.write({"liquidations": liquidations_table(live)})
    finally:
        writer.close()
    pq.write_table(pa.table({"venue": ["okx"]}), tmp_path / "landing" / "liquidations" / "000000000009.parquet")

    resources = {
        "warehouse": warehouse,
        "market_source": MarketSourceResource(bases=list(BASES)),
        "landing": LandingZone(path=str(tmp_path / "landing")),
    }
    result = dg.materialize(
        [liquidations, liquidations_hourly], resources=resources, partition_key=f"{DAY:%Y-%m-%d}",
        instance=dg.DagsterInstance.ephemeral(),
    )  # fmt: skip
    assert result.success
    stored = warehouse.read("liquidations")
    assert len(stored) == len(sim) + 1
    assert stored["source"].value_counts().to_dict() == {"sim": len(sim) - 1, "ws": 2}
    assert [r.moved_to for r in list_rejected(tmp_path / "landing")] == ["rejected/liquidations/000000000009.parquet"]

    # the hourly table against a sum written here: every row's USD under its hour, by the side liquidated
    expected: dict[tuple, list[float]] = {}
    for r in stored.itertuples(index=False):
        key = (r.venue, r.base, r.ts.floor("h"))
        cell = expected.setdefault(key, [0.0, 0.0, 0])
        cell[0 if r.side == "short" else 1] += r.notional_usd
        cell[2] += 1
    hourly = warehouse.read("liquidations_hourly")
    got = {(r.venue, r.base, r.ts): [r.buy_usd, r.sell_usd, r.count] for r in hourly.itertuples(index=False)}
    assert got.keys() == expected.keys()
    for key, (buy, sell, count) in expected.items():
        assert got[key][0] == pytest.approx(buy) and got[key][1] == pytest.approx(sell)
        assert got[key][2] == count

    def metadata(asset: str) -> dict:
        return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}

    assert metadata("liquidations")["dagster/row_count"] == len(stored)
    assert metadata("liquidations")["bad_segments_set_aside"] == 1
    assert metadata("liquidations_hourly")["dagster/row_count"] == len(hourly)
    for plot in ("liquidations_against_price", "hourly_liquidations_and_open_interest", "open_interest_by_exchange"):
        assert "data:image/png;base64," in metadata("liquidations_hourly")[plot]
