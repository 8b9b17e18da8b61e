"""`fund-pipeline collect`: the live collector's command line (every flag described in --help)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections import Counter
from pathlib import Path

from fund_pipeline.domain.curve import SnapshotPolicy
from fund_pipeline.live.collector import Collector
from fund_pipeline.live.config import CollectorConfig
from fund_pipeline.venues.registry import WS_VENUES

log = logging.getLogger("fund_pipeline.live.collector")
DESCRIPTION = "Stream the venues' funding rates into curve builders and landing segments until stopped."


def build_parser() -> argparse.ArgumentParser:
    """The `fund-pipeline collect` command line."""
    parser = argparse.ArgumentParser(prog="fund-pipeline collect", description=DESCRIPTION)
    parser.add_argument(
        "--venues", default=",".join(WS_VENUES), help=f"comma-separated venues to stream (of {', '.join(WS_VENUES)})"
    )
    parser.add_argument("--bases", default="BTC,ETH", help="comma-separated base assets, e.g. BTC,ETH,SOL")
    parser.add_argument("--landing", default="data/landing", help="landing folder the segments are written to")
    parser.add_argument("--api-base-url", default=None, help="emulator base URL; default the venues' public endpoints")
    parser.add_argument(
        "--snapshot",
        choices=["roll", "every_n_seconds", "every_update"],
        default="roll",
        help="when the curve builders emit a snapshot: at each funding roll, every N seconds, or every update",
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="snapshot cadence for every_n_seconds")
    parser.add_argument("--run-seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--all-market", action="store_true", help="one whole-market subscription where the venue has one"
    )
    parser.add_argument(
        "--inverse",
        action="store_true",
        help="also stream the bases' coin-margined perps (binance COIN-M, bybit inverse, okx BTC-USD-SWAP ...), "
        "landed as their own symbols (BTC/USD:BTC)",
    )
    parser.add_argument(
        "--no-liquidations",
        action="store_true",
        help="do not subscribe the venues' liquidation channels (binance, bybit and okx are subscribed by default)",
    )
    parser.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines")
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING ...)")
    return parser


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    bases = [b.strip().upper() for b in args.bases.split(",") if b.strip()]
    config = CollectorConfig(all_market=args.all_market, status_every_s=args.status_every, inverse=args.inverse)
    if args.no_liquidations:
        config.liquidation_venues = ()
    try:
        collector = Collector(
            venues, bases, Path(args.landing), api_base_url=args.api_base_url,
            policy=SnapshotPolicy(mode=args.snapshot, seconds=args.seconds),
            config=config,
        )  # fmt: skip
    except ValueError as bad:
        parser.error(str(bad))

    async def main() -> Counter[str]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, collector.stop)
        return await collector.run(args.run_seconds)

    stats = asyncio.run(main())
    log.info("collector stopped: %s", ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    return 0
