"""Rendered images for materialisation metadata: people would rather look than read."""

from __future__ import annotations

import base64
import functools
import io
from types import ModuleType

import numpy as np
import pandas as pd


@functools.cache
def pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend, imported on first use: loading the definitions never pays for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Inline PNG as markdown, the form the Dagster UI renders in metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def heatmap(matrix: pd.DataFrame, title: str, colorbar_label: str, cmap: str = "RdBu_r") -> bytes:
    """Rows become the y axis, columns the x axis; colour centred on zero."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.25 * len(matrix.index) + 1.5)))
    values = matrix.to_numpy(dtype="float64")
    finite = values[np.isfinite(values)]
    bound = float(np.nanpercentile(np.abs(finite), 98)) if finite.size else 1.0
    im = ax.imshow(values, aspect="auto", cmap=cmap, vmin=-bound, vmax=bound, interpolation="nearest")
    ax.set_yticks(range(len(matrix.index)), [str(i) for i in matrix.index], fontsize=7)
    step = max(1, len(matrix.columns) // 10)
    ax.set_xticks(
        range(0, len(matrix.columns), step),
        [str(c)[:16] for c in matrix.columns[::step]],
        rotation=30,
        fontsize=7,
        ha="right",
    )
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    return _png(fig)


# Above this many points the venue:base labels overlap into a blot (and cost seconds to lay out): the
# chart then shows the clusters only; the stored table names every symbol's cluster.
LABELLED_POINTS = 100


def scatter_clusters(points: pd.DataFrame, title: str) -> bytes:
    """2-D projection coloured by cluster, each point labelled venue:base when there are few enough."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    for cluster, g in points.groupby("cluster"):
        ax.scatter(g["x"], g["y"], label=f"cluster {cluster}", s=30)
        if len(points) <= LABELLED_POINTS:
            for venue, base, x, y in zip(g["venue"], g["base"], g["x"], g["y"], strict=True):
                ax.annotate(f"{venue[:3]}:{base}", (x, y), fontsize=6, alpha=0.7)
    ax.set_xlabel("projection 1")
    ax.set_ylabel("projection 2")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title)
    return _png(fig)


def grouped_bars(table: pd.DataFrame, title: str, ylabel: str) -> bytes:
    """One group per index value, one bar per column."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    table.plot.bar(ax=ax, rot=0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)


def weights_and_tracking(weights: pd.Series, tracking: pd.DataFrame, title: str) -> bytes:
    """Left: basket weights; right: cumulative target vs basket returns."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    weights.sort_values().plot.barh(ax=left, fontsize=7)
    left.set_title("weights")
    tracking.plot(ax=right)
    right.set_title("cumulative return")
    fig.suptitle(title)
    return _png(fig)


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.6g}") -> str:
    """A frame as a markdown table (index included) for the metadata panel."""
    table = frame.reset_index()
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = [
        "| " + " | ".join(float_format.format(v) if isinstance(v, float) else str(v) for v in row) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def arbitrage_spreads(pairs: pd.DataFrame, title: str) -> bytes:
    """One row per base: gross and net APR of its best pair in %, labelled with its long and short venue."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.35 * len(pairs) + 1.5)))
    y = np.arange(len(pairs))
    ax.barh(y - 0.2, pairs["gross_apr"].to_numpy() * 100, height=0.4, label="gross")
    ax.barh(y + 0.2, pairs["net_apr"].to_numpy() * 100, height=0.4, label="net of taker fees")
    labels = [f"{r.base}: long {r.long_venue} / short {r.short_venue}" for r in pairs.itertuples()]
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("APR, % a year")
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _png(fig)


def liquidations_against_price(events: pd.DataFrame, price: pd.Series, title: str) -> bytes:
    """Liquidations (ts, price, notional_usd, side) as dots on the price line, sized by USD; red longs, green shorts."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(price.index, price.to_numpy(), color="grey", linewidth=1.0, label="close")
    for side, colour in (("long", "tab:red"), ("short", "tab:green")):
        mine = events[events["side"] == side]
        size = 4 + 60 * np.sqrt(mine["notional_usd"].to_numpy() / max(events["notional_usd"].max(), 1.0))
        ax.scatter(mine["ts"], mine["price"], s=size, color=colour, alpha=0.6, label=f"{side}s liquidated")
    ax.set_ylabel("price, USD")
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _png(fig)


def liquidation_bars_with_open_interest(hourly: pd.DataFrame, open_interest: pd.Series, title: str) -> bytes:
    """Hourly liquidated USD (`buy_usd` up: shorts; `sell_usd` down: longs) and total open interest on a second axis."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    width = pd.Timedelta(minutes=50)
    ax.bar(hourly.index, hourly["buy_usd"].to_numpy() / 1e6, width=width, color="tab:green", label="buy (shorts)")
    ax.bar(hourly.index, -hourly["sell_usd"].to_numpy() / 1e6, width=width, color="tab:red", label="sell (longs)")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("liquidated, USD m an hour")
    ax.legend(fontsize=7, loc="upper left")
    oi_axis = ax.twinx()
    oi_axis.plot(open_interest.index, open_interest.to_numpy() / 1e9, color="tab:blue", label="open interest")
    oi_axis.set_ylabel("total open interest, USD bn")
    ax.set_title(title)
    return _png(fig)


def open_interest_stacked(by_venue: pd.DataFrame, title: str) -> bytes:
    """Open interest per venue (one column each, USD, indexed by time) stacked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.stackplot(by_venue.index, (by_venue.fillna(0.0).to_numpy().T / 1e9), labels=list(by_venue.columns))
    ax.set_ylabel("open interest, USD bn")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title)
    return _png(fig)
