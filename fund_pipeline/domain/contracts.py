"""What a perp contract is margined in, and its open interest in USD.

The margin type is read from the ccxt unified symbol `BASE/QUOTE:SETTLE`: a contract settled in
its own base coin (`BTC/USD:BTC`) is coin-margined (inverse), any other (`BTC/USDT:USDT`,
`BTC/USDC:USDC`) USD-margined. Venues state open interest in different units, so the USD figure
is taken in this order: a USD figure the source states; contracts × contract size (ccxt's
convention: USD per contract for inverse contracts, base coins per contract for linear ones, so
× price for those); base coins × price. Binance COIN-M's `openInterestHist` gives contracts
and coins (`sumOpenInterestValue` is in the base asset, not USD); Bybit inverse and Deribit's
perpetuals state USD; OKX states contracts, coins and USD.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from fund_pipeline.domain.prints import MARKET_TERMS_COLUMNS, SchemaError, require_columns

USD_MARGIN = "usd_margin"
COIN_MARGIN = "coin_margin"
# The aggregate over both margin types; never a contract's own margin type.
ALL_MARGIN = "all_margin"
MARGIN_TYPES = (USD_MARGIN, COIN_MARGIN)

# Columns a bar may carry besides `open_interest_usd`, each a different unit a venue states OI in.
OI_CONTRACTS = "open_interest_contracts"
OI_BASE = "open_interest_base"
CONTRACT_SIZE = "contract_size"

# How the market universe states a contract's margin, in ccxt's words (the adapters' MarketTerms.margin).
LINEAR = "linear"
INVERSE = "inverse"

_UNIFIED = re.compile(r"^(?P<base>[^/:]+)/(?P<quote>[^/:]+):(?P<settle>[^/:-]+)$")


class UnifiedSymbol(NamedTuple):
    """The parts of a ccxt unified perp symbol BASE/QUOTE:SETTLE."""

    base: str
    quote: str
    settle: str


def unified_parts(symbol: str) -> UnifiedSymbol:
    found = _UNIFIED.match(str(symbol))
    if not found:
        raise SchemaError(f"symbol {symbol!r} is not a ccxt unified perp symbol BASE/QUOTE:SETTLE")
    return UnifiedSymbol(found["base"], found["quote"], found["settle"])


def contract_margin(symbol: str) -> str:
    """`inverse` when the contract settles in its base coin (BTC/USD:BTC), `linear` otherwise: the one rule."""
    parts = unified_parts(symbol)
    return INVERSE if parts.settle == parts.base else LINEAR


def margin_type(symbol: str) -> str:
    """`coin_margin` for an inverse contract, `usd_margin` for a linear one (the aggregates' groups)."""
    return COIN_MARGIN if contract_margin(symbol) == INVERSE else USD_MARGIN


def market_terms(symbols: pd.Series, contract_size: ArrayLike | None = None) -> pd.DataFrame:
    """MARKET_TERMS_COLUMNS of each unified symbol: margin and settlement asset by `contract_margin`, the contract
    size where the source states one (ccxt's `contractSize`), else 1 base unit for a linear contract and unknown
    (NaN) for an inverse one, whose size in USD only the venue knows."""
    distinct = pd.unique(symbols)
    margin = symbols.map({s: contract_margin(s) for s in distinct}).astype("object")
    settle = symbols.map({s: unified_parts(s).settle for s in distinct}).astype("object")
    stated = (
        pd.Series(np.nan, index=symbols.index, dtype="float64")
        if contract_size is None
        else pd.to_numeric(pd.Series(np.asarray(contract_size, dtype=object), index=symbols.index), errors="coerce")
    )
    if (stated <= 0).any():
        raise SchemaError(f"market terms: non-positive contract size for {sorted(set(symbols[stated <= 0]))}")
    size = stated.astype("float64").fillna(pd.Series(np.where(margin == LINEAR, 1.0, np.nan), index=symbols.index))
    return pd.DataFrame(dict(zip(MARKET_TERMS_COLUMNS, (margin, settle, size), strict=True)), index=symbols.index)


def margin_types(symbols: pd.Series) -> pd.Series:
    """`margin_type` of every symbol (each distinct symbol parsed once)."""
    distinct = pd.unique(symbols)
    return symbols.map({s: margin_type(s) for s in distinct}).astype("object")


def open_interest_usd(bars: pd.DataFrame, price: str = "close") -> pd.Series:
    """USD open interest per bar: the stated figure, else contracts × size (× price when linear), else coins × price.

    `bars` needs symbol, open_interest_usd and `price`; open_interest_contracts, contract_size and
    open_interest_base are used when present. Negative figures or a non-positive contract size are
    refused, naming the rows.
    """
    require_columns(bars, ["symbol", "open_interest_usd", price], "market bars")

    def column(name: str) -> pd.Series:
        if name not in bars.columns:
            return pd.Series(np.nan, index=bars.index, dtype="float64")
        return pd.to_numeric(bars[name], errors="coerce").astype("float64")

    stated, contracts, base, size, px = (
        column(c) for c in ("open_interest_usd", OI_CONTRACTS, OI_BASE, CONTRACT_SIZE, price)
    )
    for name, values in (("open_interest_usd", stated), (OI_CONTRACTS, contracts), (OI_BASE, base)):
        _refuse(bars, values < 0, f"negative {name}")
    _refuse(bars, size <= 0, "non-positive contract_size")
    inverse = (margin_types(bars["symbol"]) == COIN_MARGIN).to_numpy()
    per_contract_usd = np.where(inverse, size, size * px)
    return stated.fillna(contracts * per_contract_usd).fillna(base * px)


def _refuse(bars: pd.DataFrame, bad: pd.Series, what: str) -> None:
    if bad.any():
        cols = [c for c in ("venue", "symbol", "ts") if c in bars.columns]
        sample = bars.loc[bad, cols].head(3).to_dict("records")
        raise SchemaError(f"market bars: {int(bad.sum())} row(s) with {what}, e.g. {sample}")
