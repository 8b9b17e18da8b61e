"""Running the asset graph through dg.materialize, for the tests and the fault benchmarks: the definitions, a
range run, its metadata and check verdicts, and a source with one defect injected."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline.demo import load_definitions
from fund_pipeline.resources import MarketSourceResource
from fund_pipeline.sources.simulated import SimulatedMarket


def all_assets():
    return list(load_definitions().assets)


def run(assets, selection, resources, instance, first=None, last=None, run_config=None, raise_on_error=True):
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last} if first else None
    return dg.materialize(
        assets,
        selection=selection,
        resources=resources,
        instance=instance,
        tags=tags,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def materialisation_metadata(result, asset: str) -> dict:
    event = next(
        e
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == dg.AssetKey(asset)
    )
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def check_results(result) -> dict[str, bool]:
    return {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


class MutatedSource(MarketSourceResource):
    """The simulated market with one defect injected into its settled prints."""

    defect: str = "none"

    def _build(self):
        market = SimulatedMarket(bases=("BTC", "ETH"))
        defect = self.defect

        class Source:
            name = "mutated"

            def venues(self):
                return market.venues()

            def markets(self, venue, day):
                return market.markets(venue, day)

            def bars(self, venue, start, end):
                return market.bars(venue, start, end)

            def funding_prints(self, venue, start, end):
                prints = market.funding_prints(venue, start, end)
                if defect == "nan":
                    prints.loc[3, "rate"] = np.nan
                elif defect == "inf":
                    prints.loc[3, "rate"] = np.inf
                elif defect == "huge":
                    prints.loc[3, "rate"] = 0.5
                elif defect == "off_grid":
                    prints.loc[3, "funding_time"] += pd.Timedelta(minutes=30)
                elif defect == "gaps":
                    prints = prints.loc[prints["funding_time"].dt.hour != 8].reset_index(drop=True)
                elif defect == "duplicates":
                    conflict = prints.iloc[[4]].assign(rate=prints["rate"].iloc[4] + 1e-5)
                    prints = pd.concat([prints, prints.iloc[[3]], conflict], ignore_index=True)
                elif defect == "shifted_then_bybit_fails":
                    if venue == "bybit":
                        raise RuntimeError("bybit is down")
                    prints = prints.assign(rate=prints["rate"] + 1e-6)
                elif defect == "empty":
                    prints = prints.iloc[0:0]
                elif defect == "wrong_column":
                    prints = prints.rename(columns={"rate": "funding_rate"})
                return prints

        return Source()
