"""FileSource: clock-offset inference, grid normalisation, duplicates and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.prints import BAR_COLUMNS, MARKET_COLUMNS, PRINT_COLUMNS, SchemaError
from fund_pipeline.sources.clock import Accrual, ClockOffsetError, RateSeries, infer_clock_offset
from fund_pipeline.sources.files import FileFormatError, FileSource
from fund_pipeline.venues.registry import UnknownVenueError

START_HOUR = int(pd.Timestamp("2023-01-01").value // 3_600_000_000_000)
N_HOURS = 24 * 60


def common_premium(seed: int) -> np.ndarray:
    """An hourly premium shared by all synthetic venues: slow regime plus hourly shocks."""
    rng = np.random.default_rng(seed)
    slow = np.repeat(rng.normal(0, 2e-5, N_HOURS // 48), 48)
    return 1e-5 + slow + rng.normal(0, 1e-5, N_HOURS)


def venue_series(premium: np.ndarray, interval_h: int, seed: int, offset_h: int = 0) -> RateSeries:
    """Rates settled every `interval_h` on the UTC grid, each the window's premium plus venue noise,
    stamped with a clock `offset_h` hours ahead of UTC."""
    rng = np.random.default_rng(seed)
    ends = np.arange(interval_h, N_HOURS + 1, interval_h)
    rates = np.array([premium[e - interval_h : e].sum() for e in ends]) + rng.normal(0, 5e-6, len(ends))
    return RateSeries(START_HOUR + ends + offset_h, rates, interval_h)


@settings(max_examples=15, deadline=None)
@given(offset=st.integers(-12, 14), seed=st.integers(0, 10_000))
def test_infer_clock_offset_recovers_injected_offset(offset, seed):
    premium = common_premium(seed)
    references = [venue_series(premium, 8, seed + 1), venue_series(premium, 8, seed + 2)]
    shifted = venue_series(premium, 8, seed + 3, offset_h=offset)
    assert infer_clock_offset([shifted], references).offset_h == offset


@settings(max_examples=10, deadline=None)
@given(offset=st.integers(-12, 14), seed=st.integers(0, 10_000))
def test_infer_clock_offset_of_hourly_venue_from_8h_references(offset, seed):
    premium = common_premium(seed)
    references = [venue_series(premium, 8, seed + 1), venue_series(premium, 8, seed + 2)]
    hourly = venue_series(premium, 1, seed + 3, offset_h=offset)
    assert infer_clock_offset([hourly], references).offset_h == offset


def test_accrual_over_windows_matches_a_sum_hour_by_hour():
    """Running sums against a direct sum of each covered hour's rate / interval; uncovered windows NaN."""
    hours = np.array([8, 16, 24, 40, 48])  # the window ending at 32 is missing: hours 24..31 are not covered
    rates = np.array([1e-4, 2e-4, -3e-4, 4e-4, 5e-4])
    series = RateSeries(hours + 2, rates, 8)  # a clock 2 h ahead of UTC
    per_hour = {h: r / 8 for end, r in zip(hours, rates, strict=True) for h in range(end - 8, end)}
    ends = np.arange(0, 60)
    got = Accrual.of(series, 2).over(ends, 8)
    for end, value in zip(ends, got, strict=True):
        window = range(end - 8, end)
        if all(h in per_hour for h in window):
            assert value == pytest.approx(sum(per_hour[h] for h in window), rel=1e-12)
        else:
            assert np.isnan(value)
    assert np.isfinite(got).sum() == 17 + 9  # windows ending at 8..24 and at 40..48


def test_grid_alone_leaves_aliases_and_needs_a_reference():
    series = venue_series(common_premium(0), 8, 1, offset_h=3)
    assert series.admissible_offsets(range(-12, 15)) == [-5, 3, 11]
    with pytest.raises(ClockOffsetError, match="no UTC reference"):
        infer_clock_offset([series], [])


def write_export(path, symbol, local_times, rates):
    pd.DataFrame({"Symbol": symbol, "Date": local_times, "Funding Rate": rates}).to_csv(path, index=False)


def grid_times(start: str, periods: int, hour_offset: int = 0) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq="8h") + pd.Timedelta(hours=hour_offset)


def test_duplicates_dropped_and_conflicts_counted(tmp_path):
    times = list(grid_times("2023-01-01", 6))
    rates = [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4]
    times += [times[1], times[2] + pd.Timedelta(minutes=1)]
    rates += [2e-4, 9e-4]
    write_export(tmp_path / "BTC-USDT_gate_x.csv", "BTC-USDT", times, rates)
    source = FileSource.from_paths(tmp_path)
    report = source.import_report("gate")["BTC/USDT:USDT"]
    assert report["rows_read"] == 8
    assert report["duplicates_dropped"] == 1
    assert report["conflicts"] == 1
    assert report["offset_applied_h"] == 0
    prints = source.funding_prints("gate", pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-01-03", tz="UTC"))
    assert list(prints.columns) == PRINT_COLUMNS
    assert prints["rate"].tolist() == rates[:6]


def test_gaps_counted_and_user_parquet_read(tmp_path):
    times = grid_times("2023-01-01", 30).delete([3, 4])
    frame = pd.DataFrame({"Symbol": "ETH-USDT", "Date": times, "Funding Rate": 1e-4})
    frame.to_parquet(tmp_path / "ETH-USDT_okx_export.parquet")
    source = FileSource.from_paths(tmp_path)
    assert source.venues() == ("okx",)
    assert source.import_report("okx")["ETH/USDT:USDT"]["gaps"] == 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame(
                {"Symbol": ["BTC-USDT"] * 2, "Date": ["2023-01-01", "yesterday"], "Funding Rate": [1e-4, 1e-4]}
            ),
            r"unparsable Date at line\(s\) \[3\]",
        ),
        (
            pd.DataFrame(
                {
                    "Symbol": ["BTC-USDT"] * 3,
                    "Date": grid_times("2023-01-01", 3),
                    "Funding Rate": [1e-4, np.nan, np.inf],
                }
            ),
            r"Funding Rate at line\(s\) \[3, 4\]",
        ),
    ],
)
def test_bad_files_fail_their_partitions_naming_file_and_problem(tmp_path, frame, message):
    frame.to_csv(tmp_path / "BTC-USDT_gate_bad.csv", index=False)
    source = FileSource.from_paths(tmp_path)
    assert source.venues() == ("gate",)
    with pytest.raises(FileFormatError, match=message) as caught:
        source.funding_prints("gate", pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-01-02", tz="UTC"))
    assert "BTC-USDT_gate_bad.csv" in str(caught.value)
    assert isinstance(caught.value, SchemaError)


def test_wrong_columns_are_a_stray_file_skipped(tmp_path):
    frame = pd.DataFrame(
        {"Symbol": ["BTC-USDT"] * 2, "Time": ["2023-01-01", "2023-01-01 08:00"], "Funding Rate": [1e-4, 1e-4]}
    )
    frame.to_csv(tmp_path / "BTC-USDT_gate_bad.csv", index=False)
    write_export(tmp_path / "ETH-USDT_gate_x.csv", "ETH-USDT", grid_times("2023-01-01", 4), 1e-4)
    source = FileSource.from_paths(tmp_path)
    assert source.venues() == ("gate",)
    assert [name for name, _ in source.skipped] == ["BTC-USDT_gate_bad.csv"]


def test_clock_change_inside_a_file_is_rejected_when_inferring(tmp_path):
    times = grid_times("2023-01-01", 30).append(grid_times("2023-01-11", 30, hour_offset=1))
    write_export(tmp_path / "BTC-USDT_gate_dst.csv", "BTC-USDT", times, 1e-4)
    source = FileSource.from_paths(tmp_path, clock="infer")
    with pytest.raises(FileFormatError, match="BTC-USDT_gate_dst.csv.*clock shifts"):
        source.funding_prints("gate", pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-01-02", tz="UTC"))


def test_unknown_venue_and_symbol(tmp_path):
    write_export(tmp_path / "BTC-USDT_gate_x.csv", "BTC-USDT", grid_times("2023-01-01", 4), 1e-4)
    source = FileSource.from_paths(tmp_path)
    start, end = pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-01-02", tz="UTC")
    with pytest.raises(UnknownVenueError, match="binance"):
        source.funding_prints("binance", start, end)
    with pytest.raises(UnknownVenueError, match="DOGE"):
        source.funding_prints("gate", start, end, symbol="DOGE/USDT:USDT")


@pytest.fixture(scope="module")
def sample() -> FileSource:
    return FileSource.sample()


def test_sample_venues_and_offsets(sample):
    assert sample.venues() == ("binance", "bybit", "dydx", "gate", "htx", "kucoin", "mexc")
    offsets = {v: {r["offset_applied_h"] for r in sample.import_report(v).values()} for v in sample.venues()}
    assert offsets == {"binance": {3}, "bybit": {3}, "htx": {3}, "kucoin": {3}, "mexc": {3}, "gate": {0}, "dydx": {0}}


def test_sample_binance_lands_on_utc_grid(sample):
    prints = sample.funding_prints(
        "binance", pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")
    )
    assert set(prints["funding_time"].dt.hour) == {0, 8, 16}
    assert prints["funding_time"].min() == pd.Timestamp("2020-01-01", tz="UTC")
    assert (prints["interval_h"] == 8).all()
    assert set(prints["symbol"]) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}


def test_sample_dydx_stays_hourly(sample):
    day = pd.Timestamp("2023-06-01", tz="UTC")
    prints = sample.funding_prints("dydx", day, day + pd.Timedelta(days=1), symbol="BTC/USDT:USDT")
    assert len(prints) == 24
    assert (prints["interval_h"] == 1).all()
    markets = sample.markets("dydx", day)
    assert list(markets.columns) == MARKET_COLUMNS
    assert markets["interval_h"].tolist() == [1.0, 1.0]
    assert markets["volume_usd_24h"].isna().all()


def test_sample_htx_late_settlement_is_a_counted_conflict(sample):
    report = sample.import_report("htx")["BTC/USDT:USDT"]
    assert report["conflicts"] == 1
    assert report["gaps"] == 2


def test_sample_has_no_bars(sample):
    bars = sample.bars("binance", pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-01-02", tz="UTC"))
    assert list(bars.columns) == BAR_COLUMNS
    assert len(bars) == 0
    assert str(bars["ts"].dtype) == "datetime64[ns, UTC]"


def test_files_are_read_once_per_process_and_again_when_they_change(tmp_path):
    """Every source over the same files shares one load; a rewritten file is read again."""
    path = tmp_path / "plain.csv"
    rows = "venue,symbol,funding_time,rate\n" + "".join(
        f"gate,BTC/USDT:USDT,2023-01-01T{h:02d}:00:00Z,0.0001\n" for h in (0, 8, 16)
    )
    path.write_text(rows)
    first = FileSource.from_paths(path)
    assert len(first.prints_of("gate")) == 3
    assert FileSource.from_paths(path)._load() is first._load()
    path.write_text(rows + "gate,BTC/USDT:USDT,2023-01-02T00:00:00Z,0.0002\n")
    again = FileSource.from_paths(path)
    assert again._load() is not first._load()
    assert len(again.prints_of("gate")) == 4
