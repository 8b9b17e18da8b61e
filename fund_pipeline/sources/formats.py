"""The funding-history file formats people have, detected by their header, read into one record frame.

A format names the columns that identify it and how its times, rates, venue, symbol and interval
are written; `read_records` turns any of them into RECORD_COLUMNS: the file's line of each row,
venue, symbol (ccxt unified), `time` (int ns since the epoch as the file states it, before any
clock correction), rate per interval, interval_h (NaN where the file does not say) and mark and
index prices. What a format lacks comes from the file name (`<venue>_<SYMBOL>_...`, the shipped
sample's `<BASE>-<QUOTE>_<venue>_...`, Binance's `<SYMBOL>-fundingRate-YYYY-MM`) or from the
caller (`venue=`, `symbol=`). Every failure names the file, and the line where there is one.
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.domain.time import NS_PER_HOUR
from fund_pipeline.venues.registry import ALL_VENUES, facts

RECORD_COLUMNS = ["line", "venue", "symbol", "time", "rate", "interval_h", "mark_price", "index_price"]
# Suffixes of the files the source reads; anything else in a folder is not looked at.
SUFFIXES = (".csv", ".csv.gz", ".zip", ".jsonl", ".jsonl.gz", ".ndjson", ".json", ".parquet")
# Quote currencies recognised at the end of a venue's native symbol (BTCUSDT), longest first.
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "USD")
# Suffixes venues put on perpetual symbols (OKX -SWAP, Deribit -PERPETUAL, Binance coin-M _PERP).
PERP_SUFFIXES = ("-PERPETUAL", "-SWAP", "_PERP", "-PERP", "PERP")
# Tardis's exchange ids for the venues it records (its derivative_ticker `exchange` column).
TARDIS_EXCHANGES = {
    "binance-futures": "binance",
    "bybit": "bybit",
    "okex-swap": "okx",
    "hyperliquid": "hyperliquid",
    "deribit": "deribit",
    "dydx": "dydx",
    "gate-io-futures": "gate",
    "huobi-dm-linear-swap": "htx",
    "kucoin-futures": "kucoin",
}


class FileFormatError(SchemaError):
    """A file cannot be read, or its columns, times or rates are not what its format requires.

    `venue` and `span_ns` (first and last parsable time) say which partitions the file would
    have fed, where that is known, so that only those fail.
    """

    def __init__(self, message: str, venue: str | None = None, span_ns: tuple[int, int] | None = None):
        super().__init__(message)
        self.venue = venue
        self.span_ns = span_ns


class UnrecognisedFileError(FileFormatError):
    """A file's header matches none of the known formats (a stray file in an export folder)."""


@dataclass(frozen=True)
class FileName:
    """What a file's name says: venue and symbol where it carries them."""

    venue: str | None = None
    symbol: str | None = None


def unified_symbol(native: str, venue: str | None) -> str:
    """A venue's native perp symbol as ccxt writes it: BTCUSDT, BTC-USDT-SWAP, BTC-USDT → BTC/USDT:USDT.

    A bare coin (Hyperliquid's `ETH`) takes the venue's quote; a USD quote is an inverse
    contract settled in the base (BTC-USD-SWAP → BTC/USD:BTC), as is a Deribit-style
    `BTC-PERPETUAL` without a quote.
    """
    text = str(native).strip()
    if "/" in text:
        if ":" in text:
            return text
        quote = text.split("/")[1]
        return f"{text}:{quote}"
    upper = text.upper()
    inverse_without_quote = upper.endswith("-PERPETUAL") and "_" not in upper
    for suffix in PERP_SUFFIXES:
        if upper.endswith(suffix):
            upper = upper[: -len(suffix)]
            break
    parts = [p for p in re.split(r"[-_]", upper) if p]
    if len(parts) >= 2:
        base, quote = parts[0], parts[1]
    elif inverse_without_quote and parts:
        base, quote = parts[0], "USD"
    else:
        token = parts[0] if parts else upper
        quote = next((q for q in KNOWN_QUOTES if token.endswith(q) and len(token) > len(q)), "")
        base = token[: -len(quote)] if quote else token
        if not quote:
            if venue is None:
                raise FileFormatError(f"symbol {native!r} has no quote currency and no venue says which")
            quote = facts(venue).quote
    if not re.fullmatch(r"[A-Z0-9]+", base) or not re.fullmatch(r"[A-Z0-9]+", quote):
        raise FileFormatError(f"symbol {native!r} is not a perp symbol this source understands")
    settle = base if quote == "USD" else quote
    return f"{base}/{quote}:{settle}"


def parse_file_name(path: Path) -> FileName:
    """Venue and symbol from `<venue>_<SYMBOL>_...`, `<BASE>-<QUOTE>_<venue>_...` or `<SYMBOL>-fundingRate-...`."""
    stem = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    tokens = stem.split("_")
    if len(tokens) >= 2 and tokens[0].lower() in ALL_VENUES:
        venue = tokens[0].lower()
        return FileName(venue, unified_symbol(tokens[1], venue))
    if len(tokens) >= 2 and tokens[1].lower() in ALL_VENUES:
        venue = tokens[1].lower()
        return FileName(venue, unified_symbol(tokens[0], venue))
    archive = re.match(r"^(?P<symbol>[A-Z0-9]+)-fundingRate-\d{4}-\d{2}", stem)
    if archive:
        return FileName(None, unified_symbol(archive["symbol"], None))
    return FileName()


# --- time parsing ------------------------------------------------------------------------------

TIME_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def epoch_unit(values: np.ndarray) -> str:
    """Unit of epoch numbers by magnitude: seconds, milliseconds, microseconds or nanoseconds."""
    top = float(np.nanmax(np.abs(values))) if len(values) else 0.0
    if top < 1e11:
        return "s"
    if top < 1e14:
        return "ms"
    if top < 1e17:
        return "us"
    return "ns"


def parse_times(values: pd.Series, unit: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Int ns since the epoch (as written: naive text is taken at face value) and a mask of unparsable rows.

    `unit` is s/ms/us/ns for epoch numbers, or `auto`: numbers by magnitude, else ISO-8601 text
    (an explicit offset or Z is honoured).
    """
    numeric = pd.to_numeric(values.replace("", np.nan), errors="coerce")
    numbers = numeric.to_numpy(dtype="float64")
    numeric_share = np.isfinite(numbers).mean() if len(numbers) else 1.0
    if unit != "auto" or numeric_share > 0.5:
        scale = TIME_UNITS[epoch_unit(numbers) if unit == "auto" else unit]
        bad = ~np.isfinite(numbers)
        if pd.api.types.is_integer_dtype(numeric.dtype):
            return numeric.to_numpy(dtype="int64") * scale, bad
        return np.round(np.where(bad, 0.0, numbers) * scale).astype("int64"), bad
    parsed = pd.to_datetime(values.astype("string"), errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy()
    ns = parsed.astype("int64").to_numpy()
    return np.where(bad, 0, ns), bad


# --- formats -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFormat:
    """One format: the columns that identify it and where each record field is."""

    name: str
    signature: frozenset[str]
    time: str
    rate: str
    time_unit: str = "auto"
    venue: str | None = None  # the venue the format belongs to, if it is one venue's
    venue_column: str | None = None
    symbol_column: str | None = None
    interval_column: str | None = None
    interval_h: float | None = None  # fixed interval the format implies
    mark_column: str | None = None
    index_column: str | None = None
    # Reshape the raw frame first (Tardis tickers to settlements, Deribit hourly records to 8h).
    prepare: Callable[[pd.DataFrame, str], pd.DataFrame] | None = None
    description: str = ""
    optional: tuple[str, ...] = field(default=())


def _okx_settled_rate(raw: pd.DataFrame, name: str) -> pd.DataFrame:
    """OKX: `realizedRate` is what was paid; `fundingRate` only where it is missing."""
    out = raw.copy()
    realized = pd.to_numeric(out["realizedRate"], errors="coerce")
    out["fundingRate"] = realized.where(realized.notna(), out["fundingRate"])
    return out


def _deribit_on_8h_grid(raw: pd.DataFrame, name: str) -> pd.DataFrame:
    """Deribit publishes the 8h-equivalent rate every hour; the settlements are the 00/08/16 records."""
    ts = pd.to_numeric(raw["timestamp"], errors="coerce")
    return raw.loc[ts.isna() | (ts % (8 * NS_PER_HOUR // 10**6) == 0)]


def _tardis_settlements(raw: pd.DataFrame, name: str) -> pd.DataFrame:
    """Tardis tickers → one settlement per funding timestamp: the last quoted rate before it rolled.

    Only windows whose roll the file shows (a later funding timestamp follows) count as settled.
    """
    frame = raw.assign(_row=np.arange(len(raw)))
    ft = pd.to_numeric(frame["funding_timestamp"], errors="coerce")
    frame = frame.loc[ft.notna() & pd.to_numeric(frame["funding_rate"], errors="coerce").notna()]
    frame = frame.assign(funding_timestamp=pd.to_numeric(frame["funding_timestamp"]))
    frame = frame.sort_values(["exchange", "symbol", "funding_timestamp", "timestamp"], kind="stable")
    last = frame.groupby(["exchange", "symbol", "funding_timestamp"], sort=False).tail(1)
    latest = last.groupby(["exchange", "symbol"])["funding_timestamp"].transform("max")
    settled = last.loc[last["funding_timestamp"] < latest]
    return settled.sort_values("_row")


FORMATS: tuple[FileFormat, ...] = (
    FileFormat(
        "tardis_derivative_ticker",
        frozenset({"exchange", "symbol", "timestamp", "funding_timestamp", "funding_rate"}),
        time="funding_timestamp",
        rate="funding_rate",
        time_unit="us",
        venue_column="exchange",
        symbol_column="symbol",
        mark_column="mark_price",
        index_column="index_price",
        prepare=_tardis_settlements,
        description="Tardis derivative_ticker CSV (µs timestamps); the last rate before each funding timestamp",
    ),
    FileFormat(
        "binance_archive",
        frozenset({"calc_time", "funding_interval_hours", "last_funding_rate"}),
        time="calc_time",
        rate="last_funding_rate",
        time_unit="ms",
        venue="binance",
        interval_column="funding_interval_hours",
        description="Binance public monthly funding archive (data.binance.vision)",
    ),
    FileFormat(
        "okx_rest",
        frozenset({"fundingTime", "fundingRate", "realizedRate"}),
        time="fundingTime",
        rate="fundingRate",
        time_unit="ms",
        venue="okx",
        symbol_column="instId",
        prepare=_okx_settled_rate,
        description="OKX /api/v5/public/funding-rate-history records",
    ),
    FileFormat(
        "hyperliquid_rest",
        frozenset({"time", "fundingRate", "premium"}),
        time="time",
        rate="fundingRate",
        time_unit="ms",
        venue="hyperliquid",
        symbol_column="coin",
        description="Hyperliquid fundingHistory records",
    ),
    FileFormat(
        "bybit_rest",
        frozenset({"fundingRateTimestamp", "fundingRate"}),
        time="fundingRateTimestamp",
        rate="fundingRate",
        time_unit="ms",
        venue="bybit",
        symbol_column="symbol",
        description="Bybit /v5/market/funding/history records",
    ),
    FileFormat(
        "deribit_rest",
        frozenset({"timestamp", "interest_8h"}),
        time="timestamp",
        rate="interest_8h",
        time_unit="ms",
        venue="deribit",
        interval_h=8.0,
        index_column="index_price",
        prepare=_deribit_on_8h_grid,
        description="Deribit public/get_funding_rate_history records (the 8h records)",
    ),
    FileFormat(
        "binance_rest",
        frozenset({"fundingTime", "fundingRate"}),
        time="fundingTime",
        rate="fundingRate",
        time_unit="ms",
        venue="binance",
        symbol_column="symbol",
        mark_column="markPrice",
        description="Binance /fapi/v1/fundingRate records",
    ),
    FileFormat(
        "ccxt",
        frozenset({"symbol", "fundingRate", "timestamp"}),
        time="timestamp",
        rate="fundingRate",
        time_unit="ms",
        symbol_column="symbol",
        description="ccxt fetch_funding_rate_history records (unified symbol, ms timestamp)",
    ),
    FileFormat(
        "plain",
        frozenset({"venue", "symbol", "funding_time", "rate"}),
        time="funding_time",
        rate="rate",
        venue_column="venue",
        symbol_column="symbol",
        interval_column="interval_h",
        description="venue,symbol,funding_time,rate[,interval_h] (ISO-8601 or epoch times)",
    ),
    FileFormat(
        "sample",
        frozenset({"Symbol", "Date", "Funding Rate"}),
        time="Date",
        rate="Funding Rate",
        symbol_column="Symbol",
        description="the shipped sample's Symbol,Date,Funding Rate (local wall-clock dates)",
    ),
)
FORMATS_BY_NAME = {f.name: f for f in FORMATS}


def detect_format(columns: list[str], name: str) -> FileFormat:
    """The format whose identifying columns the header has; the most specific wins."""
    present = set(columns)
    matches = [f for f in FORMATS if f.signature <= present]
    if not matches:
        raise UnrecognisedFileError(
            f"{name}: header {columns[:12]} matches no known funding format ({', '.join(FORMATS_BY_NAME)})"
        )
    return max(matches, key=lambda f: len(f.signature))


# --- reading -----------------------------------------------------------------------------------


def _read_table(path: Path) -> tuple[pd.DataFrame, int, str]:
    """The raw table, the line number of its first row and the word for a row ("line" or "row")."""
    name = path.name
    if name.endswith(".parquet"):
        return pd.read_parquet(path), 1, "row"
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False), 1, "line"
    if name.endswith(".json"):
        text = path.read_text().lstrip()
        lines = not text.startswith("[")
        return pd.read_json(path, lines=lines, dtype=False, convert_dates=False), 1, "line" if lines else "record"
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".csv")]
            if len(members) != 1:
                raise FileFormatError(f"{name}: a zip must hold exactly one .csv; it holds {archive.namelist()}")
            with archive.open(members[0]) as handle:
                return pd.read_csv(handle, dtype=str, keep_default_na=False), 2, "line"
    return pd.read_csv(path, dtype=str, keep_default_na=False), 2, "line"


def read_table(path: Path) -> tuple[pd.DataFrame, int, str]:
    """`_read_table` with every way a file can be broken (truncated gzip, bad zip, bad JSON) named."""
    try:
        return _read_table(path)
    except FileFormatError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        reason = "truncated or corrupt compressed file" if isinstance(exc, EOFError | zlib.error) else str(exc)
        raise FileFormatError(f"{path.name}: cannot be read: {reason} ({type(exc).__name__})") from exc


def _column(raw: pd.DataFrame, column: str | None) -> pd.Series | None:
    if column is None or column not in raw.columns:
        return None
    return raw[column]


def _numbers(values: pd.Series | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return pd.to_numeric(values.replace("", np.nan), errors="coerce").to_numpy(dtype="float64")


def _venues(fmt: FileFormat, raw: pd.DataFrame, file_name: FileName, venue: str | None, name: str) -> np.ndarray:
    column = _column(raw, fmt.venue_column)
    if column is not None:
        names = column.astype(str).str.strip().str.lower()
        mapped = names.map(lambda v: TARDIS_EXCHANGES.get(v, v))
        unknown = sorted(set(mapped) - set(ALL_VENUES))
        if unknown:
            raise FileFormatError(f"{name}: unknown venue(s) {unknown[:5]} in column {fmt.venue_column!r}")
        return mapped.to_numpy(dtype=object)
    chosen = venue or fmt.venue or file_name.venue
    if chosen is None:
        raise FileFormatError(
            f"{name}: the {fmt.name} format carries no venue; pass venue= (--venue) "
            f"or name the file <venue>_<SYMBOL>_..."
        )
    if chosen not in ALL_VENUES:
        raise FileFormatError(f"{name}: unknown venue {chosen!r}; known venues are {list(ALL_VENUES)}")
    if fmt.venue is not None and venue is not None and venue != fmt.venue:
        raise FileFormatError(f"{name}: the {fmt.name} format is {fmt.venue}'s, but venue={venue!r} was given")
    return np.full(len(raw), chosen, dtype=object)


def _symbols(
    fmt: FileFormat, raw: pd.DataFrame, venues: np.ndarray, file_name: FileName, symbol: str | None, name: str
):
    if symbol is not None:
        return np.full(len(raw), unified_symbol(symbol, venues[0] if len(venues) else None), dtype=object)
    column = _column(raw, fmt.symbol_column)
    if column is not None:
        native = pd.DataFrame({"symbol": column.astype(str).to_numpy(), "venue": venues})
        try:
            table = {
                (s, v): unified_symbol(s, v) for s, v in native.drop_duplicates().itertuples(index=False, name=None)
            }
        except FileFormatError as exc:
            raise FileFormatError(f"{name}: {exc}") from exc
        return np.array([table[(s, v)] for s, v in native.itertuples(index=False, name=None)], dtype=object)
    if file_name.symbol is None:
        raise FileFormatError(
            f"{name}: the {fmt.name} format carries no symbol; pass symbol= (--symbol, e.g. BTC/USDT:USDT) "
            f"or name the file <venue>_<SYMBOL>_..."
        )
    return np.full(len(raw), file_name.symbol, dtype=object)


def read_records(
    path: Path, *, venue: str | None = None, symbol: str | None = None, fmt: str | None = None
) -> tuple[FileFormat, pd.DataFrame]:
    """One file as RECORD_COLUMNS (see the module docstring) and the format it was read as."""
    name = path.name
    raw, line0, word = read_table(path)
    raw.columns = [str(c).strip() for c in raw.columns]
    if fmt is not None:
        if fmt not in FORMATS_BY_NAME:
            raise FileFormatError(f"unknown format {fmt!r}; known formats are {list(FORMATS_BY_NAME)}")
        chosen = FORMATS_BY_NAME[fmt]
        missing = sorted(chosen.signature - set(raw.columns))
        if missing:
            raise FileFormatError(f"{name}: the {fmt} format needs column(s) {missing}; got {list(raw.columns)}")
    else:
        chosen = detect_format(list(raw.columns), name)
    raw = raw.reset_index(drop=True)
    raw["_line"] = np.arange(len(raw)) + line0
    if chosen.prepare is not None:
        raw = chosen.prepare(raw, name).reset_index(drop=True)
    if raw.empty:
        raise FileFormatError(f"{name}: no records")
    lines = raw["_line"].to_numpy(dtype="int64")
    file_name = parse_file_name(path)
    venues = _venues(chosen, raw, file_name, venue, name)
    symbols = _symbols(chosen, raw, venues, file_name, symbol, name)
    times, bad_time = parse_times(raw[chosen.time], chosen.time_unit, name)
    rates = _numbers(raw[chosen.rate], len(raw))
    interval = _numbers(_column(raw, chosen.interval_column), len(raw))
    if chosen.interval_h is not None:
        interval = np.full(len(raw), chosen.interval_h)
    given = np.isfinite(interval)
    problems = [
        (bad_time, f"unparsable {chosen.time}"),
        (~np.isfinite(rates), f"NaN, infinite or non-numeric {chosen.rate}"),
        (given & ~((interval > 0) & (interval <= 24)), f"{chosen.interval_column} outside (0, 24] hours"),
    ]
    for bad, what in problems:
        if bad.any():
            good = times[~bad_time]
            span = (int(good.min()), int(good.max())) if len(good) else None
            single = venues[0] if len(set(venues)) == 1 else None
            raise FileFormatError(f"{name}: {what} at {word}(s) {lines[bad][:10].tolist()}", single, span)
    records = pd.DataFrame(
        {
            "line": lines,
            "venue": venues,
            "symbol": symbols,
            "time": times,
            "rate": rates,
            "interval_h": interval,
            "mark_price": _numbers(_column(raw, chosen.mark_column), len(raw)),
            "index_price": _numbers(_column(raw, chosen.index_column), len(raw)),
        },
        columns=RECORD_COLUMNS,
    )
    return chosen, records


def is_data_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIXES) and not path.name.startswith(".")
