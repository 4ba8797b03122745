"""Exceptions carrying the API's error code, message and HTTP status."""

from __future__ import annotations

from typing import Optional


class AtriumError(Exception):
    """An error answered by the server (or the transport), with the API's error code."""

    #: The API's error codes this class stands for (the default for unknown codes: AtriumError).
    codes: tuple = ()

    def __init__(self, message: str, *, code: str = "", status: Optional[int] = None,
                 method: str = "", url: str = "") -> None:
        super().__init__(message)
        #: The API's `error_code`, e.g. ``RESOURCE_DOES_NOT_EXIST``.
        self.code = code
        #: The API's `message`.
        self.message = message
        #: The HTTP status (``None`` when no answer came).
        self.status = status
        #: The request that failed.
        self.method = method
        self.url = url

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        code = f"{self.code}: " if self.code else ""
        return f"{code}{self.message}{where}"


class NotFound(AtriumError):
    """404: the resource does not exist."""

    codes = ("RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND")


class AlreadyExists(AtriumError):
    """409: the resource exists already."""

    codes = ("RESOURCE_ALREADY_EXISTS",)


class InvalidArgument(AtriumError):
    """400: a parameter, body or spec the server refused (the message says which and why)."""

    codes = ("INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST")


class InvalidState(AtriumError):
    """409: the operation does not fit the resource's state (e.g. cancel of an ended job)."""

    codes = ("INVALID_STATE",)


class Unauthenticated(AtriumError):
    """401: no token, or one the server does not accept."""

    codes = ("UNAUTHENTICATED",)


class PermissionDenied(AtriumError):
    """403: the token's user lacks the role the route needs."""

    codes = ("PERMISSION_DENIED",)


class PluginFailed(AtriumError):
    """502: a plugin (component) failed: deadline, memory limit, crash or its own error."""

    codes = ("PLUGIN_FAILED",)


class Unavailable(AtriumError):
    """503 (retried by the client first), 429 or 504: the server is busy or cannot reach a dependency."""

    codes = ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED")


class ServerError(AtriumError):
    """500: the server failed."""

    codes = ("INTERNAL_ERROR",)


class ConnectionFailed(AtriumError):
    """No answer: the server could not be reached (after the client's retries) or timed out."""


class JobFailed(AtriumError):
    """A job waited on ended Failed or Canceled."""

    def __init__(self, message: str, job: object = None) -> None:
        super().__init__(message, code="JOB_FAILED")
        #: The job as it ended.
        self.job = job


_BY_CODE = {
    code: cls
    for cls in (NotFound, AlreadyExists, InvalidArgument, InvalidState, Unauthenticated,
                PermissionDenied, PluginFailed, Unavailable, ServerError)
    for code in cls.codes
}
_BY_STATUS = {400: InvalidArgument, 401: Unauthenticated, 403: PermissionDenied, 404: NotFound,
              409: AlreadyExists, 429: Unavailable, 500: ServerError, 502: PluginFailed,
              503: Unavailable, 504: Unavailable}


def error_for(status: int, code: str, message: str, method: str, url: str) -> AtriumError:
    """The exception for an error answer: by the API's error code, else by the status."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, AtriumError)
    return cls(message, code=code, status=status, method=method, url=url)
