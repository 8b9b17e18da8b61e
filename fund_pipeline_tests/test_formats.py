"""Every funding-file format read from a small fixture in the venue's documented fields, and the ways a file breaks."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.prints import PRINT_COLUMNS
from fund_pipeline.resources import MarketSourceResource
from fund_pipeline.sources.files import FileSource, SourceConfigError
from fund_pipeline.sources.formats import FileFormatError, detect_format, parse_file_name, unified_symbol

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
T0 = pd.Timestamp("2023-01-01", tz="UTC")
RATES_8H = [1.0e-4, 1.2e-4, -3.5e-5, 1.0e-4, 2.5e-4, 7.1e-5]


def at(hours) -> list[pd.Timestamp]:
    return [T0 + pd.Timedelta(hours=h) for h in hours]


# file, format, venue, symbol, funding times, rates, interval
CASES = [
    ("binance_rest.csv", "binance_rest", "binance", "BTC/USDT:USDT", at(range(0, 48, 8)), RATES_8H, 8.0),
    ("bybit_rest.jsonl", "bybit_rest", "bybit", "ETH/USDT:USDT", at(range(0, 48, 8)), RATES_8H, 8.0),
    ("okx_rest.parquet", "okx_rest", "okx", "BTC/USDT:USDT", at(range(0, 48, 8)), RATES_8H, 8.0),
    (
        "hyperliquid_rest.json",
        "hyperliquid_rest",
        "hyperliquid",
        "ETH/USDC:USDC",
        at(range(24)),
        [1.25e-5 * (1 + k % 4) for k in range(24)],
        1.0,
    ),
    (
        "deribit_BTC_funding_history.jsonl",
        "deribit_rest",
        "deribit",
        "BTC/USDC:USDC",
        at([0, 8, 16]),
        [4e-5, 3.6e-4, 6.8e-4],
        8.0,
    ),
    (
        "BTCUSDT-fundingRate-2023-01.csv",
        "binance_archive",
        "binance",
        "BTC/USDT:USDT",
        at(range(0, 48, 8)),
        RATES_8H,
        8.0,
    ),
    (
        "binance-futures_derivative_ticker_2023-01-01_BTCUSDT.csv.gz",
        "tardis_derivative_ticker",
        "binance",
        "BTC/USDT:USDT",
        at(range(8, 56, 8)),
        [1.1e-4, 1.3e-4, 1.5e-4, 1.7e-4, 1.9e-4, 2.1e-4],
        8.0,
    ),
    ("okx_ETH-USDT-SWAP_ccxt.jsonl", "ccxt", "okx", "ETH/USDT:USDT", at(range(0, 48, 8)), RATES_8H, 8.0),
    (
        "ETH-USDT_gate_2023-01-01_2023-01-03_funding_history.csv",
        "sample",
        "gate",
        "ETH/USDT:USDT",
        at(range(0, 48, 8)),
        RATES_8H,
        8.0,
    ),
]


@pytest.mark.parametrize(("name", "fmt", "venue", "symbol", "times", "rates", "interval"), CASES)
def test_each_format_reads_to_utc_prints_on_the_grid(name, fmt, venue, symbol, times, rates, interval):
    source = FileSource.from_paths(FIXTURES / name)
    assert source.venues() == (venue,)
    assert source.file_report() == [{"file": name, "status": "read", "format": fmt, "rows": len(rates)}]
    prints = source.funding_prints(venue, T0 - pd.Timedelta(days=1), T0 + pd.Timedelta(days=5))
    assert list(prints.columns) == PRINT_COLUMNS
    assert set(prints["symbol"]) == {symbol}
    assert prints["funding_time"].tolist() == times
    np.testing.assert_allclose(prints["rate"].to_numpy(), rates, rtol=1e-12)
    assert (prints["interval_h"] == interval).all()
    assert (prints["kind"] == "settled").all() and (prints["source"] == "file").all()


def test_plain_schema_carries_venue_symbol_interval_and_kucoin_phase():
    source = FileSource.from_paths(FIXTURES / "plain.csv")
    assert source.venues() == ("binance", "kucoin")
    kucoin = source.funding_prints("kucoin", T0, T0 + pd.Timedelta(days=3))
    assert kucoin["funding_time"].tolist() == at(range(4, 52, 8))
    binance = source.funding_prints("binance", T0, T0 + pd.Timedelta(days=1))
    assert binance["symbol"].unique().tolist() == ["DOGE/USDT:USDT"]
    assert (binance["interval_h"] == 4.0).all()


def test_mark_and_index_prices_kept_where_the_format_has_them():
    binance = FileSource.from_paths(FIXTURES / "binance_rest.csv").funding_prints(
        "binance", T0, T0 + pd.Timedelta(1, "D")
    )
    assert binance["mark_price"].tolist() == [16500.12, 16501.12, 16502.12]
    tardis = FileSource.from_paths(FIXTURES / "binance-futures_derivative_ticker_2023-01-01_BTCUSDT.csv.gz")
    assert tardis.funding_prints("binance", T0, T0 + pd.Timedelta(1, "D"))["index_price"].notna().all()


def test_whole_folder_reads_every_format_at_once():
    source = FileSource.from_paths(FIXTURES)
    assert source.venues() == ("binance", "bybit", "deribit", "gate", "hyperliquid", "kucoin", "okx")
    assert source.skipped == []
    report = source.import_report("binance")["BTC/USDT:USDT"]
    # the REST export and the monthly archive hold the same six settlements; Tardis adds one more
    assert report["formats"] == ["binance_archive", "binance_rest", "tardis_derivative_ticker"]
    assert report["duplicates_dropped"] == 6
    assert report["conflicts"] == 5


def test_venue_and_symbol_given_where_the_format_has_none(tmp_path):
    rows = pd.DataFrame(
        {
            "symbol": "BTC/USDT:USDT",
            "fundingRate": RATES_8H,
            "timestamp": [t.value // 10**6 for t in at(range(0, 48, 8))],
        }
    )
    rows.to_csv(tmp_path / "history.csv", index=False)
    with pytest.raises(FileFormatError, match=r"history.csv: the ccxt format carries no venue; pass venue="):
        FileSource.from_paths(tmp_path).venues()
    source = FileSource.from_paths(tmp_path, venue="bybit")
    assert source.venues() == ("bybit",)
    archive = tmp_path / "archive"
    archive.mkdir()
    pd.DataFrame({"calc_time": rows["timestamp"], "funding_interval_hours": 8, "last_funding_rate": RATES_8H}).to_csv(
        archive / "funding.csv", index=False
    )
    with pytest.raises(FileFormatError, match="carries no symbol; pass symbol="):
        FileSource.from_paths(archive).venues()
    named = FileSource.from_paths(archive, symbol="ETH/USDT:USDT")
    assert named.import_report("binance").keys() == {"ETH/USDT:USDT"}


def test_file_name_prefixes_and_native_symbols():
    assert parse_file_name(Path("okx_BTC-USDT-SWAP_2023.jsonl")).symbol == "BTC/USDT:USDT"
    assert parse_file_name(Path("BTC-USDT_kucoin_x.csv.gz")).venue == "kucoin"
    assert parse_file_name(Path("ETHUSDT-fundingRate-2023-02.zip")).symbol == "ETH/USDT:USDT"
    assert parse_file_name(Path("notes.csv")).venue is None
    assert unified_symbol("ETH", "hyperliquid") == "ETH/USDC:USDC"
    assert unified_symbol("BTC-USD-SWAP", "okx") == "BTC/USD:BTC"
    assert unified_symbol("BTC-PERPETUAL", "deribit") == "BTC/USD:BTC"
    assert unified_symbol("1000PEPEUSDT", "binance") == "1000PEPE/USDT:USDT"


def test_most_specific_format_wins():
    assert detect_format(["fundingTime", "fundingRate", "realizedRate", "instId"], "x").name == "okx_rest"
    assert detect_format(["symbol", "fundingTime", "fundingRate", "markPrice"], "x").name == "binance_rest"


def test_utc_unless_configured_and_a_wrong_clock_fails_naming_the_file(tmp_path):
    local = [t + pd.Timedelta(hours=3) for t in at(range(0, 48, 8))]
    frame = pd.DataFrame(
        {"Symbol": "BTC-USDT", "Date": [t.strftime("%Y-%m-%d %H:%M:%S") for t in local], "Funding Rate": RATES_8H}
    )
    frame.to_csv(tmp_path / "BTC-USDT_binance_local.csv", index=False)
    with pytest.raises(FileFormatError, match=r"BTC-USDT_binance_local.csv: its times sit 3h past .* clock='\+3'"):
        FileSource.from_paths(tmp_path).funding_prints("binance", T0, T0 + pd.Timedelta(days=2))
    prints = FileSource.from_paths(tmp_path, clock="+3").funding_prints("binance", T0, T0 + pd.Timedelta(days=2))
    assert prints["funding_time"].tolist() == at(range(0, 48, 8))


def write_binance(path: Path, rates) -> None:
    lines = ["symbol,fundingTime,fundingRate,markPrice"]
    lines += [f"BTCUSDT,{(T0 + pd.Timedelta(hours=8 * k)).value // 10**6},{r},1" for k, r in enumerate(rates)]
    path.write_text("\n".join(lines) + "\n")


def test_bad_row_fails_only_its_venue_and_span_naming_file_and_line(tmp_path):
    write_binance(tmp_path / "binance_BTCUSDT_bad.csv", ["0.0001", "0.0001", "oops", "0.0001"])
    shutil.copy(FIXTURES / "bybit_rest.jsonl", tmp_path)
    source = FileSource.from_paths(tmp_path)
    assert source.venues() == ("binance", "bybit")
    with pytest.raises(
        FileFormatError, match=r"binance_BTCUSDT_bad.csv: NaN, infinite or non-numeric fundingRate at line\(s\) \[4\]"
    ):
        source.funding_prints("binance", T0, T0 + pd.Timedelta(days=1))
    assert len(source.funding_prints("bybit", T0, T0 + pd.Timedelta(days=2))) == 6
    # far from the bad file's span, binance partitions are unaffected
    assert source.funding_prints("binance", T0 + pd.Timedelta(days=30), T0 + pd.Timedelta(days=31)).empty


def test_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress((FIXTURES / "binance_rest.csv").read_bytes())
    (tmp_path / "binance_BTCUSDT_cut.csv.gz").write_bytes(data[: len(data) // 2])
    source = FileSource.from_paths(tmp_path)
    with pytest.raises(FileFormatError, match=r"binance_BTCUSDT_cut.csv.gz: cannot be read: truncated or corrupt"):
        source.funding_prints("binance", T0, T0 + pd.Timedelta(days=1))


def test_stray_file_skipped_with_a_warning_naming_it(tmp_path, caplog):
    shutil.copy(FIXTURES / "bybit_rest.jsonl", tmp_path)
    (tmp_path / "notes.csv").write_text("when,what\n2023-01-01,bought coffee\n")
    with caplog.at_level(logging.WARNING, logger="fund_pipeline.sources.files"):
        source = FileSource.from_paths(tmp_path)
        assert source.venues() == ("bybit",)
    assert [name for name, _ in source.skipped] == ["notes.csv"]
    assert "notes.csv" in caplog.text and "matches no known funding format" in caplog.text


def test_files_source_without_root_is_refused():
    with pytest.raises(SourceConfigError, match="needs files_root"):
        MarketSourceResource(kind="files").get()
    with pytest.raises(SourceConfigError, match="do not exist"):
        FileSource.from_paths("/nonexistent/folder")
    with pytest.raises(SourceConfigError, match="clock must be"):
        FileSource.from_paths(FIXTURES, clock="local")
