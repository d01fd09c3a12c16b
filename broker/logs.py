"""structlog set-up: JSON lines when not a TTY, readable lines when one.

Convention: events carry ids, counts and reason codes only, never payload
contents, names or free text from messages (tests/test_logging.py proves it).
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVEL = {"name": "INFO"}


def is_debug() -> bool:
    """Whether the last `configure` asked for DEBUG (the CLI then prints tracebacks)."""
    return _LEVEL["name"] == "DEBUG"


def configure(level: str = "INFO", json: bool | None = None) -> None:
    _LEVEL["name"] = level
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
