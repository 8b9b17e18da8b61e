"""Two forecast-skill runs compared forecast by forecast: is a change's effect more than the weeks' noise?

    python -m bench.forecast_compare BEFORE.parquet AFTER.parquet

Each file is a `forecasts_*.parquet` that `bench.forecast_skill` writes (run it once per revision, each
with its own FORECAST_SKILL_CACHE). Prints, per horizon and metric over all venues (and with `--venues`
per venue), the second model's error against the first's in %, with its 90 % interval over the shared
weeks drawn whole (`domain.forecast_significance.compare_models`). Negative: the second is better.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fund_pipeline.domain.forecast_metrics import ALL_VENUES
from fund_pipeline.domain.forecast_significance import DEFAULT_RESAMPLES, compare_models


def comparison_table(first: Path, second: Path, venues: bool = False, n_resamples: int = DEFAULT_RESAMPLES) -> str:
    table = compare_models(pd.read_parquet(first), pd.read_parquet(second), n_resamples)
    if not venues:
        table = table.loc[table["venue"] == ALL_VENUES]
    shown = table.assign(
        difference=table["difference_pct"].map("{:+.2f} %".format),
        interval=[f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(table["p5_pct"], table["p95_pct"], strict=True)],
        second_better=table["second_better_share"].map("{:.0%}".format),
    )
    return shown[["venue", "horizon", "metric", "difference", "interval", "second_better", "weeks"]].to_string(
        index=False
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="forecasts of the first run (the reference)")
    parser.add_argument("second", type=Path, help="forecasts of the second run")
    parser.add_argument("--venues", action="store_true", help="every venue as well as all of them")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    args = parser.parse_args()
    print(comparison_table(args.first, args.second, args.venues, args.resamples))
