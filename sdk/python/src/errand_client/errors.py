"""Typed errors.

Every error the library raises derives from :class:`ErrandError`. Answers of the server
become :class:`ApiError` or one of its subclasses, chosen by status and error code;
connection failures become :class:`Unavailable` (no status) and calls that did not answer
in time :class:`Timeout`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class ErrandError(Exception):
    """Base class of every error raised by errand_client."""


class ApiError(ErrandError):
    """The server answered with an error: ``status`` and the body's ``code``/``message``.

    ``status`` is ``None`` only for :class:`Unavailable` raised on a connection failure.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.status} {self.code}: {self.message}"


class BadRequest(ApiError):
    """400: the request was refused as invalid (the message names the field)."""


#: Alias: a 400 is a validation failure.
ValidationError = BadRequest


class NotFound(ApiError):
    """404: no such job, queue or route."""


class Conflict(ApiError):
    """409: the job's state does not allow it (``conflict``, ``contended``, ...)."""


class LeaseLost(Conflict):
    """409 ``lease_lost``: the lease token no longer holds the job. Stop working on it."""


class Forbidden(ApiError):
    """403: the server refused the call (not allowed)."""


class PayloadTooLarge(ApiError):
    """413: the request body is larger than the server takes (``--max-request-bytes``), or
    a result/checkpoint is larger than allowed (``result_too_large``)."""


class Unavailable(ApiError):
    """502, 503 or 504, or the server could not be reached (``status`` None). The request
    may or may not have happened."""


class Timeout(ApiError):
    """408 from the server, or a call that got no answer within its timeout (``status``
    None). The request may or may not have happened."""


class _AboutJob(ErrandError):
    """An error about one job, which it carries as ``job``."""

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message)
        self.job = job


class WaitTimeout(_AboutJob, Timeout):
    """:meth:`wait` reached its deadline before the job ended; ``job`` is its last state."""


class JobFailed(_AboutJob):
    """:meth:`result` found the job ``dead`` or ``cancelled``; ``job`` holds its error."""


#: The error class of each status (a 409 ``lease_lost`` is a :class:`LeaseLost`).
_BY_STATUS: Dict[int, Type[ApiError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    408: Timeout,
    409: Conflict,
    413: PayloadTooLarge,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_for(
    status: int, code: Optional[str], message: str, retry_after: Optional[float] = None
) -> ApiError:
    """The typed error for an error answer."""
    cls = LeaseLost if status == 409 and code == "lease_lost" else _BY_STATUS.get(status, ApiError)
    return cls(message, status=status, code=code, retry_after=retry_after)
