"""structlog set-up: JSON lines, the correlation id bound per request, national numbers masked.

Events are named ``<subject>_<past verb>`` (``message_accepted``,
``delivery_failed``) with keyword fields.
"""

from __future__ import annotations

import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# 11 digits (INSZ, possibly formatted YY.MM.DD-SSS.CC) or 9 digits (BSN) not part of a
# longer run of digits. Letters or dashes around it do not protect it: "x85073003328" or
# "corr-85073003328" (a correlation id a partner chose) is still a national number.
_NATIONAL_NUMBER = re.compile(r"(?<![0-9])([0-9]{2}\.?[0-9]{2}\.?[0-9]{2}[-.]?[0-9]{3}\.?[0-9]{2}|[0-9]{9})(?![0-9])")


def mask(text: str) -> str:
    return _NATIONAL_NUMBER.sub(lambda m: "*" * len(m.group(0)), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) in (9, 11):
        return mask(str(value))
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_national_numbers(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A processor that hides anything shaped like an INSZ or BSN, wherever it sits."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask_value(value)
    return event_dict


class _StderrLoggerFactory:
    """Loggers on the ``sys.stderr`` that :func:`configure` found, or, once that stream is closed,
    on the ``sys.stderr`` of the moment: whoever swapped the stream in for a while (a test runner
    invoking the CLI closes its capture afterwards) must not leave every later log call failing."""

    def __init__(self) -> None:
        self.stream = sys.stderr

    def __call__(self, *_args: Any) -> structlog.PrintLogger:
        if self.stream.closed:
            self.stream = sys.stderr
        return structlog.PrintLogger(self.stream)


def configure(*, json: bool = True, level: str = "info") -> None:
    """Configure structlog once per process (the app factory and the CLI call this)."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_national_numbers,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
