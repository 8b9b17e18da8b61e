"""The live_curve stress check: WARN naming the symbols, posting them to a webhook on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.live.alerts import STRESS_WEBHOOK_ENV, StressWebhook, live_curve_stress
from fund_pipeline.defs.partitions import FUNDING_WINDOW_PARTITIONS
from fund_pipeline.resources import Warehouse

WINDOW = "2026-03-09-08:00"
START = pd.Timestamp("2026-03-09 08:00", tz="UTC")


def history(spike_symbol: str | None) -> pd.DataFrame:
    """Hourly live snapshots over the week before the window, then the window's own two."""
    times = pd.date_range(START - pd.Timedelta("7D"), START + pd.Timedelta("2h"), freq="1h", inclusive="left")
    phase = 2 * np.pi * np.arange(len(times)) / 24  # a daily cycle: |z| of a sine stays below 1.5
    rows = []
    for k, symbol in enumerate(("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")):
        level = 0.11 + 0.01 * np.sin(phase + k)
        slope = 0.02 * np.cos(phase + k)
        if symbol == spike_symbol:
            level[-1] = 0.60  # the open window's newest snapshot jumps far above its week
        rows.append(
            pd.DataFrame({"venue": "binance", "symbol": symbol, "ts_snap": times, "level": level, "slope": slope})
        )
    return pd.concat(rows, ignore_index=True)


class Hook:
    """A local HTTP server that records the JSON bodies posted to it."""

    def __init__(self):
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def run_check(tmp_path, snapshots: pd.DataFrame, webhook: StressWebhook):
    @dg.asset(name="live_curve", partitions_def=FUNDING_WINDOW_PARTITIONS)
    def stored_live_curve(warehouse: Warehouse) -> None:
        warehouse.replace("live_curve", snapshots, {})

    return dg.materialize(
        [stored_live_curve, live_curve_stress],
        partition_key=WINDOW,
        resources={"warehouse": Warehouse(database=str(tmp_path / "w.duckdb")), "stress_webhook": webhook},
        raise_on_error=False,
    )


def check_evaluation(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_stressed_symbol_warns_by_name_and_is_posted(tmp_path, monkeypatch):
    with Hook() as hook:
        monkeypatch.setenv(STRESS_WEBHOOK_ENV, hook.url)
        result = run_check(tmp_path, history("SOL/USDT:USDT"), StressWebhook(url=dg.EnvVar(STRESS_WEBHOOK_ENV)))
    assert result.success
    evaluation = check_evaluation(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    meta = evaluation.metadata
    assert meta["stressed_symbols"].value == 1 and meta["symbols_scored"].value == 3
    assert "SOL/USDT:USDT" in meta["stressed"].value and "ETH/USDT:USDT" not in meta["stressed"].value
    assert meta["webhook"].value == "HTTP 200"
    assert "zscore_plot_binance" in meta
    (body,) = hook.bodies
    assert body["window"] == WINDOW
    assert [s["symbol"] for s in body["symbols"]] == ["SOL/USDT:USDT"]
    assert body["symbols"][0]["level_z"] > 2


def test_calm_curves_pass_and_post_nothing(tmp_path):
    with Hook() as hook:
        result = run_check(tmp_path, history(None), StressWebhook(url=hook.url))
    evaluation = check_evaluation(result)
    assert evaluation.passed
    assert evaluation.metadata["stressed_symbols"].value == 0
    assert hook.bodies == []


def test_an_unreachable_webhook_is_reported_not_raised(tmp_path):
    with Hook() as hook:
        url = hook.url
    result = run_check(tmp_path, history("BTC/USDT:USDT"), StressWebhook(url=url, timeout_s=1.0))
    evaluation = check_evaluation(result)
    assert not evaluation.passed
    assert evaluation.metadata["webhook"].value.startswith("failed")


@pytest.mark.parametrize("url", ["", None])
def test_no_webhook_configured(url):
    hook = StressWebhook() if url is None else StressWebhook(url=url)
    assert hook.post({"x": 1}) == "not configured"
