"""``chatpersona serve``: options, settings precedence, and the multi-worker factory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chatpersona.cli import serve_cmd
from chatpersona.cli.main import app
from chatpersona.config import Settings


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--store",
        "--cache",
        "--host",
        "--port",
        "--config",
        "--model-dir",
        "--workers",
    ):
        assert option in result.output


def test_settings_come_from_file_then_env_then_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    captured: dict[str, Any] = {}

    def fake_run(target: Any, **kwargs: Any) -> None:
        captured["target"] = target
        captured.update(kwargs)

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    config = tmp_path / "cp.yaml"
    config.write_text("port: 9001\nrate_limit_per_minute: 10\nstore_url: sqlite:///from-file.db\n")
    monkeypatch.setenv("CHATPERSONA_RATE_LIMIT_PER_MINUTE", "20")
    result = CliRunner().invoke(
        app, ["serve", "--config", str(config), "--store", "memory://", "--host", "127.0.0.1"]
    )
    assert result.exit_code == 0, result.output
    served = captured["target"]
    settings: Settings = served.state.settings
    assert settings.store_url == "memory://"  # option beats file
    assert settings.port == 9001 == captured["port"]  # file beats default
    assert settings.rate_limit_per_minute == 20  # environment beats file
    assert captured["access_log"] is False  # uvicorn's access log would print user ids


def test_workers_rebuild_the_app_from_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured: dict[str, Any] = {}

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: captured.update(target=target, **kw))
    monkeypatch.setenv(serve_cmd._SETTINGS_ENV, "{}")  # restored (removed) after the test
    result = CliRunner().invoke(app, ["serve", "--store", "memory://", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert captured["target"] == "chatpersona.cli.serve_cmd:worker_app"
    assert captured["factory"] is True and captured["workers"] == 2
    import os

    data = json.loads(os.environ[serve_cmd._SETTINGS_ENV])
    worker = serve_cmd.worker_app()
    assert dataclasses.asdict(worker.state.settings) == data
    assert worker.state.settings.store_url == "memory://"
