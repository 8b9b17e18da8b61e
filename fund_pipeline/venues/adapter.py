"""What every venue adapter states about its venue, as data, and the interface it implements.

An adapter (`fund_pipeline.venues.<venue>`) holds everything specific to one venue: its settlement
grid and default intervals, its funding formula's constants, its symbols, its REST mapping onto
ccxt (pages, rate limits, history depths, how the interval is learned), its WebSocket streams
(routes, cadence, limits) and their parsing, and the encoders the emulator speaks it with, so a
venue's wire format is written once, read and written. Sources, the live collector and the
emulator read these; none of them names a venue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from fund_pipeline.domain.predicted import FundingFormula
from fund_pipeline.domain.records import FundingPrint

if TYPE_CHECKING:
    from fund_pipeline.domain.liquidations import Liquidation

# The form most venues document (binance's, gate's): F = P + clamp(I - P, ±0.05 %) with the 0.01 %/8h interest;
# uniform averages where a venue states no weighting of its own.
COMMON_FORMULA = FundingFormula(interest_rate_8h=0.0001, clamp_8h=0.0005, cap=0.0075)


@dataclass(frozen=True)
class VenueFacts:
    """Facts every adapter states, including the venues known only from files."""

    name: str
    # Hour (UTC) of the first daily settlement: KuCoin settles 04/12/20, most venues 00/08/16.
    settlement_phase_h: float = 0.0
    # Interval of a symbol the venue lists without an interval of its own.
    default_interval_h: float = 8.0
    # Quote currency of its linear perps.
    quote: str = "USDT"
    # The venue's documented funding formula for a symbol with no rule of its own (`VenueAdapter.funding_formula`).
    funding: FundingFormula = COMMON_FORMULA

    @property
    def interest_rate_8h(self) -> float:
        """The interest component per 8h (0.01 % where the venue has one), the mass point of funding."""
        return self.funding.interest_rate_8h

    @property
    def rate_cap(self) -> float:
        """Largest |rate| per interval the venue settles for a symbol with no cap of its own."""
        return max(self.funding.cap, -self.funding.lower)


@dataclass(frozen=True)
class InversePerp:
    """A coin-margined (inverse) perpetual the venue lists: quoted in USD, margined and settled in its base coin.

    One contract is worth `contract_usd` US dollars whatever the coin's price (Binance COIN-M BTC 100 USD,
    Bybit 1 USD, OKX `ctVal`, Deribit `contract_size`).
    """

    base: str
    contract_usd: float

    @property
    def symbol(self) -> str:
        """ccxt's unified symbol of a coin-margined perp, BTC/USD:BTC."""
        return f"{self.base}/USD:{self.base}"


@dataclass(frozen=True)
class MarketTerms:
    """How a perp is margined: `margin` "linear" or "inverse", the margin (and settlement) asset, the contract size.

    A linear perp's contract is one unit of the base coin; an inverse perp's is `contract_size` US dollars.
    """

    margin: str
    settle: str
    contract_size: float


@dataclass(frozen=True)
class RateLimit:
    """A request budget: `limit` weight per `window_s` (per IP), each request weighing `weight`.

    It binds the venue's endpoints `paths` (exact, or a prefix when ending in "/"; () = every
    request) and, on the client side, the ccxt methods that call them (`methods`; () = every call).
    """

    name: str
    limit: float
    window_s: float
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    weight: float = 1.0

    def covers(self, method: str) -> bool:
        return not self.methods or method in self.methods

    def binds(self, path: str) -> bool:
        return not self.paths or any(path.startswith(p) if p.endswith("/") else path == p for p in self.paths)


@dataclass(frozen=True)
class HistoryDepth:
    """How far back one endpoint serves: `days` before now, or only its latest `rows` rows (0: no row limit)."""

    method: str  # the ccxt method that reads the endpoint
    endpoint: str  # the venue's path, for error messages and the emulator
    days: float = math.inf
    rows: int = 0
    step_h: float = 1.0  # hours per row when `rows` bounds the depth

    def oldest_ms(self, now_ms: int) -> int:
        """The oldest time the endpoint still answers for at `now_ms`."""
        by_days = -math.inf if math.isinf(self.days) else now_ms - self.days * 86_400_000
        by_rows = -math.inf if not self.rows else now_ms - self.rows * self.step_h * 3_600_000
        return int(max(by_days, by_rows, 0))


MINUTE_MS = 60_000


@dataclass(frozen=True)
class PremiumHistory:
    """The venue's premium-index history endpoint, as ccxt's implicit API calls it (`method`; `inverse_method` for
    its coin-margined perps, None where it has none for them), `page` rows a request one every `step_ms` (a
    minute; hyperliquid's hourly funding records)."""

    method: str
    endpoint: str
    page: int
    step_ms: int
    inverse_method: str | None = None


class PremiumSample(NamedTuple):
    """One premium-index value and the instant it is known: the last millisecond of what it averages."""

    known_ms: int
    premium: float


@dataclass(frozen=True)
class InstrumentOpenInterest:
    """The venue's per-instrument open-interest history where ccxt's unified method reads another (OKX's sums a
    currency's linear and inverse contracts): ccxt's implicit `method` of `endpoint`, at most `page` rows a
    request, one every `step_ms` (`VenueAdapter.open_interest_params`, `open_interest_rows`)."""

    method: str
    endpoint: str
    page: int
    step_ms: int


class OpenInterestSample(NamedTuple):
    """One instrument's open interest at `ts_ms`: contracts, coins and US dollars, as the venue states them."""

    ts_ms: int
    contracts: float
    coins: float
    usd: float


@dataclass(frozen=True)
class RestSpec:
    """How to talk to the venue through ccxt, and what it offers."""

    ccxt_id: str
    options: dict[str, Any]
    funding_page: int
    ohlcv_page: int
    oi_page: int = 0
    has_spot: bool = False
    has_mark_index: bool = False
    funding_until: str = "until"
    # Hours between funding-history records when the venue publishes them on a fixed clock
    # (deribit: hourly) rather than one per settlement; 0 when one record is one settlement.
    funding_record_h: float = 0.0
    rate_limits: tuple[RateLimit, ...] = ()
    history: tuple[HistoryDepth, ...] = ()
    # Status the venue answers an IP that kept exceeding its limits (binance 418, bybit's gateway 403).
    ban_status: int = 429
    # Its premium-index history (`premium_params`, `premium_rows`); None where it publishes none (deribit).
    premium: PremiumHistory | None = None
    # Market types ccxt's `fetchMarkets` must add to list the coin-margined perps (binance and bybit "inverse").
    inverse_market_types: tuple[str, ...] = ()
    # What ccxt's `openInterestValue` of a coin-margined perp counts: "usd", or "coin" (binance COIN-M's
    # sumOpenInterestValue), where its USD figure is contracts x contract size by the contract rule.
    inverse_oi_value: str = "usd"
    # Its per-instrument open-interest history, read instead of ccxt's fetch_open_interest_history; None: ccxt's.
    instrument_oi: InstrumentOpenInterest | None = None

    def depth(self, method: str) -> HistoryDepth | None:
        return next((h for h in self.history if h.method == method), None)


@dataclass(frozen=True)
class StreamSpec:
    """The venue's public funding WebSocket, as it behaves."""

    url: str  # base URL of the public endpoint
    route: str  # path of the funding (mark-price) stream under `url`
    # Routes of the venue that exist but deliver no funding data (Binance's retired `/ws`).
    dead_routes: tuple[str, ...] = ()
    # Where its coin-margined perps stream when not on `route` (Bybit's `/v5/public/inverse`); None: on `route`.
    inverse_route: str | None = None
    # The host they stream from when not `url` (Binance COIN-M's `wss://dstream.binance.com`); None: `url`.
    inverse_url: str | None = None
    app_ping: tuple[str, float] | None = None  # (frame, every seconds); None when the venue pings the client
    server_ping_s: float | None = None  # how often the venue sends protocol pings, when it does
    stamps_messages: bool = True  # whether its messages carry the venue's event time (Hyperliquid's do not)
    max_connection_age_s: float = math.inf
    push_every_s: tuple[float, float] = (1.0, 1.0)  # the venue's push cadence per symbol (min, max) seconds
    streams_per_connection: int = 1_000_000
    subscribe_batch: int = 1_000_000  # topics per subscribe request
    # Silence after which a connection is declared dead: a few of its slowest pushes, at least 10 s.
    silence_s: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.silence_s:
            object.__setattr__(self, "silence_s", max(10.0, 3.0 * self.push_every_s[1]))

    def endpoint(self, base_url: str | None = None) -> str:
        """The stream's URL at the venue, or under an emulator's `base_url` (`<base>/<venue>` + route)."""
        return (self.url if base_url is None else base_url) + self.route

    @property
    def separate_inverse(self) -> bool:
        """Whether coin-margined perps stream on connections of their own (another route or host)."""
        return self.inverse_route is not None or self.inverse_url is not None

    @property
    def inverse_path(self) -> str:
        """The coin-margined perps' route under an emulator's `<base>/<venue>`: behind the first label of their own
        host where they have one (`/dstream/ws`), so two hosts' equal routes stay apart."""
        route = self.inverse_route or self.route
        if self.inverse_url is None:
            return route
        return "/" + self.inverse_url.partition("://")[2].split("/")[0].split(".")[0] + route

    def inverse_endpoint(self, base_url: str | None = None) -> str:
        """The coin-margined perps' stream URL at the venue, or under an emulator's `base_url`."""
        if base_url is None:
            return (self.inverse_url or self.url) + (self.inverse_route or self.route)
        return base_url + self.inverse_path


class ParseContext:
    """What a parser keeps across one connection's frames, and what it reports besides prints.

    `intervals` maps a unified symbol to its funding interval for venues whose messages do not
    carry it (learned over REST by the caller); `wanted` the unified symbols subscribed (None: all).
    Items skipped (dated contracts, symbols nobody configured) are counted in `skipped`; items of
    a multi-item frame that do not parse go to `bad_items` (reason, raw item) so they are
    quarantined alone.
    """

    def __init__(self, venue: str, intervals: dict[str, float] | None = None, wanted: set[str] | None = None) -> None:
        self.venue = venue
        self.intervals = intervals if intervals is not None else {}
        self.wanted = wanted
        self.control_messages = 0
        self.skipped: dict[str, int] = {}
        self.bad_items: list[tuple[str, Any]] = []
        self.failed_subscriptions: list[str] = []
        self.state: dict[str, dict[str, Any]] = {}
        self.symbols: dict[str, tuple[str, str] | None] = {}
        # The venue's clock at this frame, for messages that carry no time (None: the receive time).
        self.now_ns: int | None = None
        # Liquidations parsed from the frame (the venue's liquidation channel), taken by the caller after each frame;
        # `contract_sizes` the size of a contract per unified symbol where the frames count contracts (OKX).
        self.liquidations: list[Liquidation] = []
        self.contract_sizes: dict[str, float] = {}

    def control(self) -> list[FundingPrint]:
        self.control_messages += 1
        return []

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class VenueAdapter:
    """One venue. Subclasses override what their venue does differently; the defaults are the common case."""

    facts: VenueFacts
    rest: RestSpec | None = None
    stream: StreamSpec | None = None
    # The coin-margined perps the venue lists (none by default).
    inverse_perps: tuple[InversePerp, ...] = ()
    # The venue's public liquidation channel, on the same connection as its funding stream; None: it has none.
    liquidation_channel: str | None = None
    # Its public REST history of liquidations; None where it has none (binance retired allForceOrders, bybit has none).
    liquidation_history_path: str | None = None

    @property
    def name(self) -> str:
        return self.facts.name

    # ------------------------------------------------------------ symbols

    def venue_symbol(self, base: str) -> str:
        """ccxt unified symbol of a base asset's linear perp."""
        quote = self.facts.quote
        return f"{base}/{quote}:{quote}"

    def inverse_perp(self, symbol: str) -> InversePerp | None:
        """The coin-margined perp of a unified symbol, None for a linear one."""
        return next((p for p in self.inverse_perps if p.symbol == symbol), None)

    def terms(self, symbol: str) -> MarketTerms:
        """Margin asset, settlement currency and contract size of one of the venue's perps."""
        inverse = self.inverse_perp(symbol)
        if inverse is not None:
            return MarketTerms("inverse", inverse.base, inverse.contract_usd)
        quote = symbol.partition(":")[2] or self.facts.quote
        return MarketTerms("linear", quote, 1.0)

    def native_symbol(self, symbol: str) -> str:
        """ccxt unified symbol to the venue's own id."""
        raise NotImplementedError(f"{self.name}: no native symbol mapping")

    def unified_symbol(self, native: str) -> tuple[str, str] | None:
        """The venue's id to (ccxt unified symbol, base); None for ids that are not linear perps (dated contracts)."""
        raise NotImplementedError(f"{self.name}: no native symbol mapping")

    # ------------------------------------------------------------ funding formula

    def funding_formula(self, symbol: str, at_ms: int | None = None) -> FundingFormula:
        """The documented formula `symbol` settles with at `at_ms` (None: now): the venue's by default."""
        return self.facts.funding

    def rest_funding_formulas(
        self, markets: dict[str, dict[str, Any]], call: Callable[..., Any]
    ) -> dict[str, FundingFormula]:
        """Each symbol's formula with the cap and floor the venue's REST lists for it now (`markets`: ccxt markets
        by unified symbol; `call(method, *args)` a ccxt call): `funding_formula` where the venue lists none."""
        return {symbol: self.funding_formula(symbol) for symbol in markets}

    # ------------------------------------------------------------ REST

    def rest_interval_h(self, market: dict[str, Any], call: Callable[..., Any]) -> float:
        """The symbol's current funding interval; `call(method, *args)` is a ccxt call with retries."""
        return self.facts.default_interval_h

    def stream_intervals(self, call: Callable[..., Any], symbols: list[str]) -> dict[str, float]:
        """Intervals the parser needs and the stream does not carry (learned over REST); {} when it carries them."""
        return {}

    def history_params(self, method: str, symbol: str) -> dict[str, Any]:
        """Params the venue needs on a ccxt history call of `symbol` beyond ccxt's defaults (none by default)."""
        return {}

    def open_interest_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """The request of `RestSpec.instrument_oi` for `symbol`'s rows timed in [lo_ms, hi_ms) (or a little more)."""
        raise NotImplementedError(f"{self.name}: no per-instrument open-interest history")

    def open_interest_rows(self, response: Any) -> list[OpenInterestSample]:
        """The rows of one `RestSpec.instrument_oi` response; MalformedMessage naming what is wrong otherwise."""
        raise NotImplementedError(f"{self.name}: no per-instrument open-interest history")

    def premium_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """The request of `RestSpec.premium` for the samples of `symbol` known in [lo_ms, hi_ms) (or a little more)."""
        raise NotImplementedError(f"{self.name}: no premium-index history")

    def premium_rows(self, response: Any) -> list[PremiumSample]:
        """The samples of one premium-history response; MalformedMessage naming what is wrong otherwise."""
        raise NotImplementedError(f"{self.name}: no premium-index history")

    # ------------------------------------------------------------ WebSocket: client side

    def subscribe_messages(self, symbols: list[str], all_market: bool = False) -> list[str]:
        raise NotImplementedError(f"{self.name}: no WebSocket stream")

    def parse(self, msg: Any, received_at_ns: int, ctx: ParseContext) -> list[FundingPrint]:
        """One decoded JSON frame to predicted prints; [] for acks and pongs; MalformedMessage otherwise."""
        raise NotImplementedError(f"{self.name}: no WebSocket stream")

    # ------------------------------------------------------------ WebSocket: the emulator's side

    def encode_prints(self, prints: list[FundingPrint], session: EmulatedSession) -> list[str]:
        """Frames the venue would push for `prints` (predicted, one per subscribed symbol)."""
        raise NotImplementedError(f"{self.name}: no WebSocket stream")

    def serve_request(self, text: str, session: EmulatedSession) -> list[str]:
        """The venue's answers to one client frame (subscribe, ping, garbage), updating `session`."""
        raise NotImplementedError(f"{self.name}: no WebSocket stream")

    def subscribe_streams(self, streams: list[str], session: EmulatedSession) -> str | None:
        """Streams named in the connection URL (Binance's raw and combined routes); an error text when refused."""
        return f"{self.name}: streams are subscribed by message, not by URL"

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any] | None:
        """The venue's REST error body; None when its gateway answers plain text."""
        return None

    # ------------------------------------------------------------ liquidations

    def liquidation_subscribe_messages(self, symbols: list[str]) -> list[str]:
        """Frames subscribing to the liquidations of `symbols` (of every contract where the channel is whole-market);
        `parse` then leaves what the channel pushes in `ParseContext.liquidations`."""
        raise NotImplementedError(f"{self.name}: no liquidation channel")

    def encode_liquidations(self, liquidations: list[Liquidation], session: EmulatedSession) -> list[str]:
        """Frames the venue would push on its liquidation channel for `liquidations` (the emulator's side)."""
        raise NotImplementedError(f"{self.name}: no liquidation channel")

    def liquidation_history(
        self, call: Callable[..., Any], symbol: str, start_ms: int, end_ms: int, ctx: ParseContext
    ) -> list[Liquidation]:
        """Liquidations of `symbol` in [start_ms, end_ms) from `liquidation_history_path`; `call` is a ccxt call."""
        raise NotImplementedError(f"{self.name}: no REST history of liquidations")


class EmulatedSession:
    """The emulator's view of one client connection, as the adapters' server-side encoders need it.

    `known(native)` is the unified symbol the emulator serves for a venue id, else None.
    """

    def __init__(self, venue: str, known: Callable[[str], str | None], combined: bool = False) -> None:
        self.venue = venue
        self.known = known
        self.combined = combined
        self.symbols: dict[str, str] = {}  # unified -> the venue's topic / stream name
        self.all_market = False
        self.sent: dict[str, dict[str, Any]] = {}  # per native id, the last ticker pushed (bybit deltas)
        self.fail_subscriptions: set[str] = set()  # unified symbols whose funding-stream subscribe the emulator refuses
        # The liquidation channel: per unified symbol its topic, or every contract (`liquidations_all`).
        self.liquidation_symbols: dict[str, str] = {}
        self.liquidations_all = False
