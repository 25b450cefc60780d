"""Logging for every process (serve and each of its server processes, worker, the other commands): one stderr
handler, plain text or one JSON object a line (LOG_FORMAT), our loggers at LOG_LEVEL and everyone else's
(asyncpg, aiosqlite, aiohttp, uvicorn, litestar...) at LOG_LEVEL_THIRD_PARTY.

Nothing from outside can start a log line: every message (arguments included) has its control characters and
line breaks escaped, for every logger, ours or a library's; a traceback keeps its lines but each is indented, so
a line that starts in the first column is always the start of a record. Every record carries the id of the
request it was written for (adapters/log_context.py), `-` outside a request.

`logging_config(settings)` is a `logging.config.dictConfig` dictionary: uvicorn applies it itself in each server
process it starts (`serve --workers N` starts fresh interpreters, which would otherwise log nothing of ours).
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
from typing import Any

import msgspec

from marketplace_provider.adapters.log_context import current_request_id
from marketplace_provider.config.settings import Settings

OUR_LOGGERS = ("marketplace", "marketplace_provider")  # marketplace.* by name, marketplace_provider.* by __name__
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
NO_REQUEST = "-"

# C0 controls (newline, carriage return, tab, escape...), DEL, C1 controls, and the Unicode line and paragraph
# separators, which some viewers break lines on.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What a JSON encoder may leave raw inside a string, yet a terminal or a line-splitting reader may act on.
_JSON_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape(text: str) -> str:
    """The text on one line, control characters written as escapes (`\\n`, `\\x1b`, `\\u2028`)."""
    return _UNSAFE.sub(_escaped, text) if _UNSAFE.search(text) else text


def indented(text: str) -> str:
    """A multi-line text (a traceback) under a record: its lines kept, each indented, other controls escaped."""
    return "\n".join("    " + line for line in _UNSAFE_BUT_NEWLINE.sub(_escaped, text).split("\n"))


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request it was written for (`record.request_id`, `-` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or NO_REQUEST
        return True


def _request_id(record: logging.LogRecord) -> str:
    """The stamp of our filter, else the context's (a handler of someone else's with our formatter)."""
    value = getattr(record, "request_id", None)
    return escape(value) if isinstance(value, str) else (current_request_id() or NO_REQUEST)


class TextFormatter(logging.Formatter):
    """`2026-11-29 16:00:01,000 INFO marketplace.access [request id]: message`, the message escaped; lines written
    outside a request have no `[...]` (`... WARNING marketplace: message`)."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Local time, `2026-11-29 16:00:01,000`; the seconds part made once a second (every request logs a line)."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp, self._second = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)), second
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        record.request_id = request_id = _request_id(record)
        record.asctime = self.formatTime(record, self.datefmt)
        head = f"{record.asctime} {record.levelname} {record.name}"
        line = f"{head}: {record.message}" if request_id == NO_REQUEST else f"{head} [{request_id}]: {record.message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + indented(record.exc_text)
        if record.stack_info:
            line += "\n" + indented(self.formatStack(record.stack_info))
        return line


# The attributes every LogRecord has; the others came from `extra=` and go into the JSON object.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "request_id", "taskName",
}
_JSON = msgspec.json.Encoder(enc_hook=str)


def _json_safe(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message (escaped as in text), request_id, `extra=` fields,
    and the traceback as `exception`."""

    _second = -1
    _stamp = ""

    def _time(self, record: logging.LogRecord) -> str:
        """UTC, `2026-11-29T16:00:01.000Z`; the seconds part made once a second."""
        second = int(record.created)
        if second != self._second:
            self._stamp, self._second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)), second
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": escape(record.getMessage()),
            "request_id": _request_id(record),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key not in document:
                document[key] = escape(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = indented(record.exc_text)  # as in text: no line of it starts a record
        if record.stack_info:
            document["stack"] = indented(self.formatStack(record.stack_info))
        line = _JSON.encode(document).decode()
        return _JSON_RAW_UNSAFE.sub(_json_safe, line) if _JSON_RAW_UNSAFE.search(line) else line


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


def third_party_level(settings: Settings) -> str:
    """LOG_LEVEL_THIRD_PARTY when set; else INFO, or LOG_LEVEL when that is quieter (WARNING quiets them too)."""
    if settings.log_level_third_party:
        return settings.log_level_third_party.upper()
    ours = settings.log_level.upper()
    return ours if logging.getLevelName(ours) > logging.INFO else "INFO"


def logging_config(settings: Settings) -> dict[str, Any]:
    """The whole set-up as a dictConfig dictionary (picklable: uvicorn hands it to the processes it spawns)."""
    formatter = FORMATTERS[settings.log_format.lower()]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"kit": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "kit",
                "filters": ["request_id"],
            }
        },
        "root": {"level": third_party_level(settings), "handlers": ["stderr"]},
        "loggers": {
            # ours: their own level; records still reach the root's handler (which has no level of its own)
            **{name: {"level": settings.log_level.upper(), "handlers": [], "propagate": True} for name in OUR_LOGGERS},
            # uvicorn's: through our handler and formatter, at the root's level, whatever configured them before
            **{name: {"level": "NOTSET", "handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Set up logging for this process (the console script calls it first thing)."""
    logging.config.dictConfig(logging_config(settings))
    logging.getLogger("marketplace").debug(
        "logging: %s lines, our loggers at %s, the others at %s",
        settings.log_format.lower(), settings.log_level.upper(), third_party_level(settings),
    )
