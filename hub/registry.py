"""Loads adapters named in configuration (``"module:Class"``), lazily.

Short aliases map to the adapters shipped in ``adapters/``; an unknown alias
raises with a did-you-mean hint, as kombu's transport registry does.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import cast

import httpx

from hub.errors import ConfigurationError
from hub.ports import JSON, Adapter, AdapterFactory

ALIASES: dict[str, str] = {
    "rest-push": "adapters.restpush:RestPushAdapter",
}


def resolve(spec: str) -> AdapterFactory:
    """Import the class that ``spec`` names (an alias or ``module:Class``)."""
    target = ALIASES.get(spec, spec)
    if ":" not in target:
        hint = difflib.get_close_matches(spec, list(ALIASES), n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigurationError(f"unknown adapter {spec!r}: use an alias or 'module:Class'.{extra}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"adapter module {module_name!r} cannot be imported: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ConfigurationError(f"adapter module {module_name!r} has no {attr!r}")
    return cast(AdapterFactory, factory)


def build(spec: str, partner_id: str, config: Mapping[str, JSON], http: httpx.AsyncClient) -> Adapter:
    """Build the adapter for one partner and check that it honours the port."""
    adapter = resolve(spec)(partner_id, config, http)
    if not isinstance(adapter, Adapter):
        raise ConfigurationError(f"{spec!r} does not implement hub.ports.Adapter")
    return adapter
