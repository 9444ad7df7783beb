"""The one error hierarchy of kb.

    KbError                      base of every error kb raises on purpose
    ├── ConfigError              a setting is unknown or has a bad value
    ├── QueryError               a request is malformed: bad JSON, bad characters, bad search fields (HTTP 400)
    ├── NotFoundError            an SOP or other object does not exist (HTTP 404)
    ├── InputError               a field of a request or command is invalid (HTTP 422)
    ├── AuthRequiredError        no valid credentials were given (HTTP 401)
    ├── ForbiddenError           the user's role does not allow this, or four-eyes forbids it (HTTP 403)
    ├── ConflictError            the object changed since the caller read it (HTTP 409)
    │   └── RemoteMovedError     the content remote moved on while publishing: another replica published first
    ├── TooLargeError            a request body or document is over its size limit (HTTP 413)
    ├── RateLimitedError         too many requests from one client; carries retry_after seconds (HTTP 429)
    ├── StorageError             git, SQLite or the disk failed (full disk, a git error) (HTTP 503)
    │   └── UnavailableError     a shared service (the content remote) cannot be reached now; carries retry_after
    ├── DocumentError            a document or library file is invalid; carries problems (HTTP 422)
    └── IndexError_              the index is missing or cannot be built / loaded
        └── IndexNotBuiltError   no index generation exists yet

The CLI turns a KbError into a click.ClickException; the web API answers every
error in one JSON shape, {"error": {"code", "message", "details"}}.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One problem found in a file: where it is and what is wrong."""

    file: str
    line: int
    message: str
    field: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}"

    def to_dict(self) -> dict:
        """Return the problem as plain data for JSON."""
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "severity": self.severity,
        }


class KbError(Exception):
    """Base of every error kb raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, details: object = None):
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(KbError):
    """A setting is unknown or has a value of the wrong kind."""

    code = "config_error"


class QueryError(KbError):
    """A request is malformed: JSON that does not parse, forbidden characters, a bad search field."""

    code = "bad_request"
    http_status = 400


class NotFoundError(KbError):
    """The requested object does not exist."""

    code = "not_found"
    http_status = 404


class InputError(KbError):
    """A field of a request or command is invalid; details name the field."""

    code = "invalid_input"
    http_status = 422


class AuthRequiredError(KbError):
    """No valid credentials (session or API key) were given."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(KbError):
    """The user is known but may not do this."""

    code = "forbidden"
    http_status = 403


class ConflictError(KbError):
    """The object changed since the caller read it (a stale base revision)."""

    code = "conflict"
    http_status = 409


class RemoteMovedError(ConflictError):
    """A push to the content remote was refused: another replica published first (kb.workflow retries once)."""


class TooLargeError(KbError):
    """A request body or a document is over its size limit."""

    code = "too_large"
    http_status = 413


class RateLimitedError(KbError):
    """Too many requests from one client (address, key or name) in a window."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: int, details: object = None):
        super().__init__(message, details)
        self.retry_after = max(1, int(retry_after))


class StorageError(KbError):
    """git, SQLite or the file system failed: nothing was half written, and a retry may succeed."""

    code = "storage_error"
    http_status = 503


class UnavailableError(StorageError):
    """A shared service (the content remote) cannot be reached now; the API adds Retry-After: retry_after seconds."""

    def __init__(self, message: str, retry_after: int = 30, details: object = None):
        super().__init__(message, details)
        self.retry_after = max(1, int(retry_after))


@dataclass
class DocumentError(KbError):
    """A document or library file is invalid."""

    problems: list[Problem] = field(default_factory=list)
    code = "invalid_document"
    http_status = 422

    def __post_init__(self) -> None:
        lines = "\n".join(str(p) for p in self.problems)
        KbError.__init__(self, lines or "invalid document", [p.to_dict() for p in self.problems])


class IndexError_(KbError):
    """The index cannot be built or loaded."""

    code = "index_error"
    http_status = 503


class IndexNotBuiltError(IndexError_):
    """No index generation exists yet."""

    code = "index_not_built"

    def __init__(self, data_dir: object):
        super().__init__(f"no index in {data_dir}: run `kb index` first")
