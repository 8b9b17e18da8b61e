"""Files source on the shipped sample: the once-per-process load, then the cost of one day × venue partition.

Reference, timed in the same run on the same files: the partition served the way the source
used to be used, re-filtering the venue's whole frame with boolean masks, and the load redone
for every run (what a source rebuilt per run, with its clock inference, cost). Both paths must
return identical prints and markets for every partition.
Target (issue 11): at most 20 ms of source overhead per partition, partition-independent work once.

    .venv/bin/python -m bench.files_source [--quick]
"""

from __future__ import annotations

import time
from typing import cast

import pandas as pd

from bench._common import BenchResult, best_of, quick_parser, report
from fund_pipeline.sources import files
from fund_pipeline.sources.files import SAMPLE_ROOT, FileSource, load

TARGET_MS = 20.0
DAY = pd.Timedelta(days=1)


def reference_partition(prints: pd.DataFrame, day: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
    """The partition by boolean masks over every print of the venue."""
    in_day = prints.loc[(prints["funding_time"] >= day) & (prints["funding_time"] < day + DAY)]
    out = in_day.sort_values(["symbol", "funding_time"], kind="stable").reset_index(drop=True)
    return out, sorted(in_day["symbol"].unique())


def run(quick: bool = False) -> BenchResult:
    files._LOADED.clear()
    specs = FileSource.sample().specs
    load_s, loaded = best_of(lambda: load(specs), 1 if quick else 3)
    files._LOADED[files.cache_key(specs)] = loaded  # what the first FileSource of a process leaves behind
    source = FileSource(specs)
    source._loaded = loaded
    days_per_venue = 20 if quick else None
    keys = []
    for venue in source.venues():
        first, last = source.coverage(venue)
        days = pd.date_range(first, last, freq="D")
        keys += [(venue, d) for d in (days[:days_per_venue] if days_per_venue else days)]

    def optimised():
        return [(source.funding_prints(v, d, d + DAY), source.markets(v, d)) for v, d in keys]

    def reference():
        return [reference_partition(loaded.prints[v], d) for v, d in keys]

    opt_s, got_any = best_of(optimised, 1 if quick else 3)
    ref_s, want_any = best_of(reference, 1 if quick else 3)
    got, want = cast(list, got_any), cast(list, want_any)
    agree = all(a.equals(b) and m["symbol"].tolist() == s for (a, m), (b, s) in zip(got, want, strict=True))
    per_partition_ms = opt_s / len(keys) * 1e3
    per_run_reload_ms = load_s * 1e3
    started = time.perf_counter()
    FileSource(specs).venues()  # a second source over the same files in this process: served from the cache
    cached_s = time.perf_counter() - started
    figures = {
        "partitions (day x venue)": len(keys),
        "files": len(specs),
        "load once: read, parse, clock inference, merge (s)": round(load_s, 3),
        "a second FileSource in the same process (ms)": round(cached_s * 1e3, 3),
        "per partition, prints + markets (ms)": round(per_partition_ms, 3),
        "reference per partition, boolean masks (ms)": round(ref_s / len(keys) * 1e3, 3),
        "ratio reference / optimised": round(ref_s / opt_s, 2),
        "reference per run if the load is redone each run (ms)": round(per_run_reload_ms, 1),
    }
    return BenchResult(
        name="files_source",
        target=f"<= {TARGET_MS:g} ms source overhead per partition; load once per process",
        met=per_partition_ms <= TARGET_MS and cached_s < load_s,
        agree=agree,
        figures=figures,
        notes=[f"sample at {SAMPLE_ROOT.name}/, clock inferred (the only files that need it)"],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
