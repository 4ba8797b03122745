"""The transport: one keep-alive session, the token, timeouts, retries on connection errors and
503 only (with backoff, honouring Retry-After), error answers turned into exceptions, streaming."""

from __future__ import annotations

import io
import json as _json
import os
import random
import time
from typing import IO, Any, Iterator, Mapping, Optional, Union
from urllib.parse import quote

import requests

from . import errors
from ._routes import ROUTES

#: Methods safe to send again after the connection broke mid-request.
_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE"}

#: `timeout` not given: the client's read timeout (None: wait as long as it takes).
_DEFAULT: Any = object()


def _has_streams(files: Any) -> bool:
    """Whether a multipart `files` argument holds file objects (which cannot be sent twice)."""
    items = files.items() if isinstance(files, Mapping) else (files or [])
    for _, v in items:
        content = v[1] if isinstance(v, tuple) else v
        if hasattr(content, "read"):
            return True
    return False


def _seek_start(body: Any) -> Optional[int]:
    try:
        return body.tell()
    except (AttributeError, OSError, ValueError):
        return None


class Transport:
    """Sends the API's requests for one server and token."""

    def __init__(self, server: str, token: Optional[str], *, timeout: float = 60.0,
                 connect_timeout: float = 10.0, retries: int = 5, backoff: float = 0.25,
                 user_agent: str = "atrium-python", unauthenticated_hint: str = "") -> None:
        self.server = server.rstrip("/")
        #: Added to a 401's message: where the token came from, or where the client looked.
        self.unauthenticated_hint = unauthenticated_hint
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, route: str, **params: Any) -> str:
        """The URL of a route of the table with its path parameters filled in (escaped)."""
        _, template = ROUTES[route]
        path = template
        for k, v in params.items():
            raw = k.startswith("_")  # a `{*rest}` parameter keeps its slashes
            name = k.lstrip("_")
            path = path.replace("{" + name + "}", quote(str(v), safe="/@" if raw else "@"))
        if "{" in path:
            raise ValueError(f"route {route} needs more parameters: {path}")
        return self.server + path

    def call(self, route: str, *, params: Optional[Mapping[str, Any]] = None,
             query: Optional[Mapping[str, Any]] = None, json: Any = None,
             data: Union[bytes, IO[bytes], Iterator[bytes], None] = None,
             files: Any = None, headers: Optional[Mapping[str, str]] = None,
             stream: bool = False, timeout: Optional[float] = _DEFAULT) -> requests.Response:
        """Sends the request of `route`; raises the API's error as an exception."""
        method, _ = ROUTES[route]
        url = self.url(route, **(params or {}))
        q = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        hdrs = dict(headers or {})
        body = data
        if json is not None:
            body = _json.dumps(json, allow_nan=False).encode()
            hdrs.setdefault("Content-Type", "application/json")
        start = _seek_start(body) if body is not None and not isinstance(body, bytes) else None
        replayable = (body is None or isinstance(body, bytes) or start is not None) and not _has_streams(files)
        read_timeout = self.timeout if timeout is _DEFAULT else timeout
        may_resend = method in _IDEMPOTENT or "Idempotency-Key" in hdrs
        attempt = 0
        while True:
            attempt += 1
            if start is not None:
                body.seek(start)  # type: ignore[union-attr]
            try:
                r = self.session.request(method, url, params=q, data=body, files=files,
                                         headers=hdrs, stream=stream,
                                         timeout=(self.connect_timeout, read_timeout))
            except requests.exceptions.ConnectionError as e:
                # a refused connection sent nothing: always safe to try again
                sent = not isinstance(e, requests.exceptions.ConnectTimeout) and "Connection refused" not in str(e)
                if attempt <= self.retries and replayable and (may_resend or not sent):
                    self._sleep(attempt, None)
                    continue
                raise errors.ConnectionFailed(f"cannot reach {self.server}: {e}", method=method, url=url) from e
            except requests.exceptions.Timeout as e:
                raise errors.ConnectionFailed(f"no answer from {self.server} in time: {e}", method=method, url=url) from e
            if r.status_code == 503 and attempt <= self.retries and replayable:
                self._sleep(attempt, r.headers.get("Retry-After"))
                r.close()
                continue
            if r.status_code >= 400:
                err = _error(r, method, url)
                if r.status_code == 401 and self.unauthenticated_hint:
                    err.message = f"{err.message}; {self.unauthenticated_hint}"
                raise err
            return r

    def json(self, route: str, **kw: Any) -> Any:
        """Sends the request of `route` and answers its JSON body."""
        r = self.call(route, **kw)
        if not r.content:
            return None
        return r.json()

    def _sleep(self, attempt: int, retry_after: Optional[str]) -> None:
        delay = self.backoff * (2 ** (attempt - 1))
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(delay, 8.0) * (0.75 + random.random() / 2))

    def download(self, route: str, dest: Union[str, "os.PathLike[str]", IO[bytes], None] = None,
                 **kw: Any) -> Any:
        """Streams a download to a path or a file object (bytes when `dest` is None)."""
        r = self.call(route, stream=True, **kw)
        with r:
            if dest is None:
                buf = io.BytesIO()
                for chunk in r.iter_content(1 << 20):
                    buf.write(chunk)
                return buf.getvalue()
            if isinstance(dest, (str, os.PathLike)):
                tmp = f"{os.fspath(dest)}.part"
                with open(tmp, "wb") as f:
                    for chunk in r.iter_content(1 << 20):
                        f.write(chunk)
                os.replace(tmp, dest)
                return dest
            for chunk in r.iter_content(1 << 20):
                dest.write(chunk)
            return dest


def _query_value(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v]
    return v


def _error(r: requests.Response, method: str, url: str) -> errors.AtriumError:
    code, message = "", ""
    try:
        body = r.json()
        code = str(body.get("error_code", ""))
        message = str(body.get("message", ""))
    except ValueError:
        message = r.text.strip()[:2000]
    if not message:
        message = f"HTTP {r.status_code} {r.reason}"
    return errors.error_for(r.status_code, code, message, method, url)
