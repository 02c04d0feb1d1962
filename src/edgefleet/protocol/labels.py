"""Device labels and label selectors (``region=eu,hw=orin-nx``)."""

from __future__ import annotations

import re

from edgefleet.errors import ConfigurationError

__all__ = ["check_labels", "matches", "parse_selector"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
_VALUE = re.compile(r"^[A-Za-z0-9_.\-/]{0,63}$")


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Return ``labels`` if every key and value is well formed, else raise.

    >>> check_labels({"region": "eu"})
    {'region': 'eu'}
    >>> check_labels({"bad key": "x"})
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: label key 'bad key' must be letters, digits, '_.-/' (1-63)
    """
    for key, value in labels.items():
        if not _KEY.match(key):
            raise ConfigurationError(f"label key {key!r} must be letters, digits, '_.-/' (1-63)")
        if not isinstance(value, str) or not _VALUE.match(value):
            raise ConfigurationError(
                f"label {key}={value!r}: value must be letters, digits, '_.-/' (0-63)"
            )
    return dict(labels)


def parse_selector(text: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` (empty text selects every device).

    >>> parse_selector("region=eu, hw=orin-nx")
    {'region': 'eu', 'hw': 'orin-nx'}
    >>> parse_selector("")
    {}
    >>> parse_selector("region")
    Traceback (most recent call last):
    ...
    edgefleet.errors.ConfigurationError: selector term 'region' is not key=value
    """
    selector: dict[str, str] = {}
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        key, sep, value = term.partition("=")
        if not sep:
            raise ConfigurationError(f"selector term {term!r} is not key=value")
        selector[key.strip()] = value.strip()
    return check_labels(selector)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether every term of ``selector`` is among ``labels``.

    >>> matches({"region": "eu"}, {"region": "eu", "hw": "x86"})
    True
    >>> matches({"region": "us"}, {"region": "eu"})
    False
    """
    return all(labels.get(k) == v for k, v in selector.items())
