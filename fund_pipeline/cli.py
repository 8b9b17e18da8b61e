"""`fund-pipeline demo | real-sample | import | backfill | init-home | exchange-emulator | collect`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "exchange-emulator":
        from fund_pipeline.emulator.server import run_cli

        return run_cli(argv[1:])
    if argv and argv[0] == "collect":
        from fund_pipeline.live.collect_cli import run_cli

        return run_cli(argv[1:])

    parser = argparse.ArgumentParser(prog="fund-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialise the whole asset graph on the simulated market")
    demo.add_argument("--days", type=int, default=60, help="days of history to materialise (default 60)")
    demo.add_argument("--end", default=None, help="last day (exclusive, YYYY-MM-DD); default today UTC")
    real = sub.add_parser("real-sample", help="import the real public sample and score forecasts on it")
    real.add_argument("--start", default="2022-01-01")
    real.add_argument("--end", default="2024-01-01")
    imp = sub.add_parser(
        "import",
        help="import funding files (venue REST exports, Binance archives, Tardis, ccxt, plain UTC) through Dagster",
        description="Materialise the files' day x venue partitions of ingest and curves into data/imports and the "
        "project's DAGSTER_HOME, with a progress bar; run it again to resume, or to re-import changed files only.",
    )
    imp.add_argument("paths", nargs="+", help="files or folders (folders are read recursively)")
    imp.add_argument("--venue", help="venue of files whose format and name do not say it")
    imp.add_argument("--symbol", help="ccxt unified symbol (e.g. BTC/USDT:USDT) of files that do not say it")
    imp.add_argument("--format", dest="fmt", help="format name instead of detection by header")
    imp.add_argument("--clock", default="utc", help="the files' clock: utc (default), +3 (local = UTC+3), or infer")
    imp.add_argument("--since", help="first day to import (YYYY-MM-DD, UTC)")
    imp.add_argument("--until", help="day after the last one to import (YYYY-MM-DD, UTC)")
    back = sub.add_parser(
        "backfill",
        help="backfill settled prints and curves from the venues' REST APIs (ccxt) through Dagster",
        description="Materialise raw_funding_prints and curve_history for the day x venue partitions from --since into "
        "data/backfill and the project's DAGSTER_HOME, paced by each venue's rate limits, with a progress bar; run it "
        "again to resume. A --since older than a venue keeps is clamped to its oldest whole day, with a warning.",
    )
    back.add_argument("--venues", required=True, help="comma-separated venues, e.g. binance,okx")
    back.add_argument("--bases", required=True, help="comma-separated base assets, e.g. BTC,ETH")
    back.add_argument("--since", required=True, help="first day (YYYY-MM-DD, UTC)")
    back.add_argument("--until", help="day after the last one (YYYY-MM-DD, UTC); default each venue's today")
    back.add_argument("--api-base-url", help="the venues' REST APIs under this address (the exchange emulator)")
    back.add_argument("--days-per-run", type=int, help="days of one venue per Dagster run (a kill loses at most one)")
    sub.add_parser("init-home", help="prepare the project-local DAGSTER_HOME")
    sub.add_parser("exchange-emulator", help="serve the venues' REST and WebSocket formats on 127.0.0.1")
    sub.add_parser("collect", help="run the live collector")
    args = parser.parse_args(argv)

    if args.command == "init-home":
        from fund_pipeline.instance import prepare_home

        print(prepare_home())
        return 0
    if args.command == "import":
        from fund_pipeline.importer import run_import
        from fund_pipeline.sources.files import SourceConfigError

        try:
            return run_import(args.paths, args.venue, args.symbol, args.fmt, args.clock, args.since, args.until)
        except SourceConfigError as exc:
            parser.error(str(exc))

    if args.command == "backfill":
        from fund_pipeline.backfill import BackfillConfigError, run_backfill
        from fund_pipeline.sources.base import VenueUnavailableError
        from fund_pipeline.venues.registry import UnknownVenueError

        try:
            sizing = {} if args.days_per_run is None else {"days_per_run": args.days_per_run}
            return run_backfill(args.venues, args.bases, args.since, args.until, args.api_base_url, **sizing)
        except (BackfillConfigError, UnknownVenueError) as bad:
            parser.error(str(bad))
        except VenueUnavailableError as down:
            print(f"fund-pipeline backfill: {down}", file=sys.stderr)
            return 1

    from fund_pipeline import demo as demo_module

    if args.command == "demo":
        return demo_module.run_demo(days=args.days, end=args.end)
    return demo_module.run_real_sample(start=args.start, end=args.end)


if __name__ == "__main__":
    raise SystemExit(main())
