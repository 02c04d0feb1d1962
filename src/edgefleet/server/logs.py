"""The server's log lines: plain text (the default) or one JSON object per line.

``edgefleet server --log-format json`` (or ``EDGEFLEET_LOG_FORMAT=json``) makes every line a
JSON object with ``time``, ``level``, ``logger`` and ``message``, plus the structured fields a
line carries (the audit trail's ``actor``, ``action``, ``target``, ``outcome``, ``detail``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

__all__ = ["JsonFormatter", "LogFormat", "configure_logging", "text_fields"]

LogFormat = Literal["text", "json"]

_HANDLER_NAME = "edgefleet-server"

_SAFE = re.compile(r"[A-Za-z0-9_.:@/+,-]+")
"""A value made only of these characters is written as it is; any other is quoted."""


def text_fields(fields: Mapping[str, object]) -> str:
    r"""``key=value`` pairs for a text log line; a value that is not a plain token is quoted.

    Quoted values are JSON strings: a space, a quote, ``=`` or a control character (a newline
    that would start a forged line) is escaped, so one call always makes one line and every
    value reads back unambiguously.

    Examples
    --------
    >>> text_fields({"actor": "ops", "target": "digits@2 to region=eu", "n": 3})
    'actor=ops target="digits@2 to region=eu" n=3'
    >>> print(text_fields({"target": "x\naudit actor=root", "outcome": ""}))
    target="x\naudit actor=root" outcome=""
    """
    return " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())


def _text_value(value: object) -> str:
    text = str(value)
    return text if _SAFE.fullmatch(text) else json.dumps(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the record's ``fields`` (a dict) are merged in.

    Examples
    --------
    >>> record = logging.LogRecord("edgefleet.audit", logging.INFO, "", 0, "audit %s", ("x",), None)
    >>> record.fields = {"actor": "ops"}
    >>> line = json.loads(JsonFormatter().format(record))
    >>> line["message"], line["actor"], line["level"]
    ('audit x', 'ops', 'info')
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(fmt: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send the ``edgefleet`` loggers to stderr in ``fmt`` (once; calling again replaces it)."""
    root = logging.getLogger("edgefleet")
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
