"""Typed reads of an adapter's configuration mapping; each wrong key is a ConfigurationError."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from hub.errors import ConfigurationError
from hub.identifiers import IdentifierError, parse_oin
from hub.ports import JSON


def text(config: Mapping[str, JSON], key: str, default: str | None = None) -> str:
    """A required (or defaulted) non-empty string."""
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"configuratiesleutel {key!r} ontbreekt of is geen tekst")
    return value


def number(config: Mapping[str, JSON], key: str, default: float) -> float:
    """A positive number."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"configuratiesleutel {key!r} is een positief getal")
    return float(value)


def oin(config: Mapping[str, JSON], key: str) -> str:
    """A required OIN (20 digits)."""
    try:
        return parse_oin(text(config, key))
    except IdentifierError as exc:
        raise ConfigurationError(f"{key}: {exc}") from exc


def strings(config: Mapping[str, JSON], key: str, default: Collection[str]) -> tuple[str, ...]:
    """A list of strings, or the default."""
    value = config.get(key)
    if value is None:
        return tuple(default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"configuratiesleutel {key!r} is een lijst van teksten")
    return tuple(str(v) for v in value)
