"""The kinds of settings (whole numbers, rates, Redis and database URLs, origins, hosts, git remotes...): how a
value of each is read and checked. kb.config lists the settings; this module says what a value of each kind
may be, and every refusal names the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kb import database
from kb.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One setting: its name, default, kind and a line of help."""

    name: str
    default: Any
    help: str
    kind: str = "str"  # str int hops float path choice rate storage origins url hosts remote database
    choices: tuple[str, ...] = ()


MAX_PROXY_HOPS = 5  # KB_PROXY_HOPS: more proxies in a row than any deployment has
STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


def coerce(setting: Setting, value: Any) -> Any:
    """The value of a setting as its kind reads it.

    Raises:
        ConfigError: naming the setting and what is wrong with the value.
    """
    if value is None:
        return None
    if setting.kind == "int":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {setting.name}: expected a whole number, got {value!r}") from None
        if number < 1:
            raise ConfigError(f"setting {setting.name}: must be at least 1, got {number}")
        return number
    if setting.kind == "hops":
        if str(value).strip() not in [str(n) for n in range(MAX_PROXY_HOPS + 1)]:
            raise ConfigError(
                f"setting {setting.name}: expected a whole number from 0 to {MAX_PROXY_HOPS}, got {value!r}"
            )
        return int(value)
    if setting.kind == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {setting.name}: expected a number, got {value!r}") from None
        if not 0 <= number <= 100:
            raise ConfigError(f"setting {setting.name}: must be from 0 to 100, got {number:g}")
        return number
    if setting.kind == "path":
        return Path(value).expanduser().resolve()
    if setting.kind in ("origins", "hosts") and isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))  # already parsed (settings passed on to create_app)
    text = str(value)
    if setting.kind in _TEXT_KINDS:
        return _TEXT_KINDS[setting.kind](setting, text)
    if setting.kind == "database":
        database.parse_url(text)  # a ConfigError names the setting and the reason, the password masked
        return text.strip()
    if setting.kind == "choice" and text not in setting.choices:
        allowed = ", ".join(setting.choices)
        raise ConfigError(f"setting {setting.name}: {text!r} is not one of {allowed}")
    return text


def _rate(setting: Setting, text: str) -> str:
    """A rate-limit string such as '120/minute' or '10 per second; 100 per hour', checked by the limits library."""
    from limits import parse_many

    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ConfigError(
            f"setting {setting.name}: {text!r} is not a rate limit such as '120/minute' or '10 per second'"
        )
    return text


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _listed(setting: Setting, text: str, pattern: re.Pattern, what: str) -> tuple[str, ...]:
    """A comma-separated list whose every item matches pattern; a ConfigError names the first that does not."""
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [item for item in items if not pattern.match(item)]
    if bad:
        raise ConfigError(f"setting {setting.name}: {bad[0]!r} is not {what}")
    return items


def _origins(setting: Setting, text: str) -> tuple[str, ...]:
    """Origins such as 'https://desk.example.com, http://localhost:3000', each named (no '*', no path)."""
    return _listed(
        setting,
        text,
        _ORIGIN,
        "an origin such as https://desk.example.com (scheme and host, optional port; no '*', path or trailing slash)",
    )


_BASE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$")


def _url(setting: Setting, text: str) -> str:
    """A base address such as 'https://kb.example.com' or 'https://intranet.example.com/kb' (no trailing '/')."""
    text = text.strip().rstrip("/")
    if text and not _BASE_URL.match(text):
        raise ConfigError(
            f"setting {setting.name}: {text!r} is not an address such as https://kb.example.com"
            " (http or https, a host, optional port and path; no query or fragment)"
        )
    return text


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}|\*))?$")


def _hosts(setting: Setting, text: str) -> tuple[str, ...]:
    """Host header patterns such as 'kb.example.com, 127.0.0.1:*' (host, host:port, or host:* for any port)."""
    return _listed(
        setting,
        text,
        _HOST,
        "a host such as kb.example.com, kb.example.com:8443 or 127.0.0.1:* (no scheme, path or '*' host)",
    )


_REMOTE_URL = re.compile(
    r"^(?P<scheme>file|ssh|https?)://(?P<user>[^/?#\s@]*(?:@[^/?#\s@]*)*@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*)(?::[0-9]{1,5})?(?P<path>/[^\s?#]*)?$"
)
_REMOTE_SCP = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9][A-Za-z0-9.-]*:[^\s]+$")


def _remote(setting: Setting, text: str) -> str:
    """A git remote: an absolute path, file://, ssh://, http(s)://, or user@host:path (scp style); "" for none.

    The message of a refused value masks any credentials in it (kb.redaction.mask_credentials).
    """
    from kb.redaction import mask_credentials

    text = text.strip()
    if not text:
        return ""
    shown = mask_credentials(text)
    reason = None
    if any(ord(c) < 32 or c.isspace() for c in text):
        reason = "it holds a space or control character"
    elif text.startswith("-"):
        reason = "it starts with '-' (git would read it as an option)"
    elif "::" in text.split("/")[0] or text.startswith("ext:"):
        reason = "git's transport helpers (ext::, fd::, ...) are not allowed"
    elif "://" in text:
        match = _REMOTE_URL.match(text)
        if match is None:
            reason = "it is not a file://, ssh://, http:// or https:// address without query or fragment"
        elif match["scheme"] == "file" and (match["host"] or not match["path"]):
            reason = "a file:// address names a path on this machine: file:///srv/kb/content.git"
        elif match["scheme"] != "file" and (not match["host"] or not match["path"] or match["path"] == "/"):
            reason = "it names no host or no repository path"
    elif text.startswith(("/", "~")):
        pass
    elif not _REMOTE_SCP.match(text):
        reason = "a path must be absolute (/srv/kb/content.git); else give an address or user@host:path"
    if reason:
        raise ConfigError(f"setting {setting.name}: {shown!r} is not a git remote: {reason}")
    return str(Path(text).expanduser()) if text.startswith("~") else text


def _storage(setting: Setting, text: str) -> str:
    """A rate-limit storage URI: memory:// or redis://host:port/db."""

    parts = urlsplit(text)
    if parts.scheme not in STORAGE_SCHEMES or (parts.scheme.startswith("redis") and not (parts.netloc or parts.path)):
        raise ConfigError(
            f"setting {setting.name}: {text!r} is not memory:// or redis://host:port/db"
            " (rediss:// and redis+unix:// work too)"
        )
    return text


# The kinds whose value is checked as text by one function each (the others are read in coerce itself).
_TEXT_KINDS = {
    "rate": _rate,
    "storage": _storage,
    "origins": _origins,
    "url": _url,
    "hosts": _hosts,
    "remote": _remote,
}
