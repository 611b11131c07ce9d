"""Settings: read once, in a face (CLI or API factory), then passed down frozen.

Library code never reads ``os.environ``; :func:`load_settings` is the only place that
does, and only when a face calls it with ``environ=os.environ``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chatpersona.exceptions import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "CHATPERSONA_"


@dataclass(frozen=True)
class Settings:
    """Every knob of a running chatpersona, with embedded defaults (no servers needed).

    Examples
    --------
    >>> s = load_settings(environ={"CHATPERSONA_PORT": "9000"})
    >>> s.port, s.store_url
    (9000, 'sqlite:///chatpersona.db')
    """

    store_url: str = "sqlite:///chatpersona.db"
    cache_url: str | None = None
    cache_ttl_seconds: int = 60
    state_url: str = "memory://"
    bus_url: str = "memory://"
    model_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    rate_limit_per_minute: int = 6000
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    default_tenant: str = "default"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (settings are frozen)."""
        return dataclasses.replace(self, **changes)


def _coerce(name: str, raw: Any, target: Any) -> Any:
    if raw is None:
        return None
    try:
        if target in ("int", int):
            return int(raw)
        if target in ("str", str):
            return str(raw)
        if target in ("str | None",):
            return None if raw in ("", None) else str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"Setting {name!r} must be {target}. Got {raw!r} instead.", setting=name, value=raw
        ) from exc
    return raw


def load_settings(
    file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from a YAML file, then ``CHATPERSONA_*`` variables, then
    explicit overrides (later wins). Unknown keys are an error naming them."""
    known = {f.name: f.type for f in dataclasses.fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"Cannot read settings file {path}: {exc}", file=str(path)) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"Settings file {path} must hold a mapping.", file=str(path))
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"Unknown setting(s) {', '.join(unknown)} in {path}. Known: {', '.join(sorted(known))}.",
                file=str(path),
                keys=unknown,
            )
        values.update(data)
    for key, raw in (environ or {}).items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in known:
                values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"Unknown setting(s) {', '.join(unknown)}.", keys=unknown)
    return Settings(**{k: _coerce(k, v, known[k]) for k, v in values.items()})
