"""Suite-wide guard: tests talk to the local emulator only, never to a public exchange."""

import inspect

import pytest

from fund_pipeline.sources.ccxt import CcxtSource


@pytest.fixture(autouse=True)
def only_the_emulator(monkeypatch):
    """No test may reach a public exchange: every CcxtSource must be pointed at the emulator."""
    build = CcxtSource.__init__

    def guarded(self, *args, **kwargs):
        bound = inspect.signature(build).bind(self, *args, **kwargs)
        url = bound.arguments.get("api_base_url")
        assert url and url.startswith("http://127.0.0.1:"), f"CcxtSource built without the emulator's URL: {url!r}"
        build(self, *args, **kwargs)

    monkeypatch.setattr(CcxtSource, "__init__", guarded)


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session's warehouse tests; skipped where none is installed."""
    from fund_pipeline_tests.postgres_server import running_postgres, server_binaries

    if server_binaries() is None:
        pytest.skip("no PostgreSQL server installed here (.ci/run installs one for CI)")
    with running_postgres() as server:
        yield server
