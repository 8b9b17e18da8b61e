"""Resources: where data comes from (MarketSource) and where it is kept (warehouse, landing).

Storage is a resource so that the embedded DuckDB can be swapped for a store that accepts
concurrent writers without touching an asset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr, field_validator, model_validator

from fund_pipeline.sources.base import MarketSource, UnknownVenueError
from fund_pipeline.warehouse import WAREHOUSE_POOL, Warehouse, data_dir, open_readonly

__all__ = ["WAREHOUSE_POOL", "LandingZone", "MarketSourceResource", "Warehouse", "data_dir", "open_readonly"]


class MarketSourceResource(dg.ConfigurableResource):
    """Chooses the market data source by config: simulated (default), files, or ccxt."""

    kind: Literal["simulated", "files", "ccxt"] = "simulated"
    seed: int = 7
    bases: list[str] | None = None
    inverse: bool = Field(
        default=False,
        description=(
            "simulated and ccxt: also list the venues' coin-margined (inverse) perps, BTC/USD:BTC and ETH/USD:ETH "
            "on binance COIN-M, bybit inverse, okx coin-margined swaps and deribit; off by default so the default "
            "universe and every figure computed from it stay as they were"
        ),
    )
    files_root: str | None = None
    # files only: what a format lacks (venue, ccxt symbol), the format by name, the files' clock
    # ("utc", "+3" for local = UTC+3, "infer" for the shipped sample), or an import manifest.
    files_venue: str | None = None
    files_symbol: str | None = None
    files_format: str | None = None
    files_clock: str = "utc"
    files_manifest: str | None = None
    api_base_url: str | None = None

    _source: MarketSource | None = PrivateAttr(default=None)

    @field_validator("bases")
    @classmethod
    def _some_bases(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not any(base.strip() for base in value):
            raise ValueError("market_source.bases is empty: leave it unset for every base, or name at least one")
        return value

    @model_validator(mode="after")
    def _inverse_where_listed(self) -> MarketSourceResource:
        if self.inverse and self.kind == "files":
            raise ValueError(
                "market_source.inverse is for the simulated and ccxt sources; the 'files' source lists "
                "the markets its files hold"
            )
        return self

    def get(self) -> MarketSource:
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> MarketSource:
        if self.kind == "simulated":
            from fund_pipeline.sources.simulated import SimulatedMarket

            bases = tuple(self.bases) if self.bases else None
            return SimulatedMarket(seed=self.seed, bases=bases, inverse=self.inverse)
        if self.kind == "files":
            from fund_pipeline.sources.files import FileSource, SourceConfigError

            if self.files_manifest:
                return FileSource.from_manifest(self.files_manifest)
            if not self.files_root:
                raise SourceConfigError(
                    "market_source: kind='files' needs files_root (a folder or files, os.pathsep-separated) "
                    "or files_manifest; it no longer falls back to the shipped sample"
                )
            return FileSource.from_paths(
                self.files_root,
                venue=self.files_venue,
                symbol=self.files_symbol,
                fmt=self.files_format,
                clock=self.files_clock,
            )
        from fund_pipeline.sources.ccxt import CcxtSource

        return CcxtSource(api_base_url=self.api_base_url, bases=self.bases, inverse=self.inverse)

    def venue_source(self, venue: str) -> MarketSource:
        """The source, after checking it serves `venue` (clear error otherwise)."""
        source = self.get()
        if venue not in source.venues():
            raise UnknownVenueError(
                f"venue {venue!r} is not served by the {self.kind!r} source; it serves {list(source.venues())}"
            )
        return source


class LandingZone(dg.ConfigurableResource):
    """Folder where the live collector lands immutable segments for the sensor to pick up."""

    path: str = str(data_dir() / "landing")

    @field_validator("path")
    @classmethod
    def _a_folder(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("landing.path is empty: name the folder the collector lands its segments in")
        if Path(value).exists() and not Path(value).is_dir():
            raise ValueError(f"landing.path {value!r} is a file: it must be the collector's landing folder")
        return value

    def root(self) -> Path:
        return Path(self.path)
