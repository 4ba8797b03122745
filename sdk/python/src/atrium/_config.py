"""Where the client finds its server, workspace and token: the CLI's order (see the README).

- server: the argument, ``ATRIUM_SERVER``, the profile's ``default_server`` (the last
  ``atrium login``), else ``http://127.0.0.1:8080``;
- workspace: the argument, ``ATRIUM_WORKSPACE``, the workspace saved with the server's login,
  else ``default``;
- token: the argument, ``ATRIUM_TOKEN``, the file ``ATRIUM_TOKEN_FILE`` names, the profile's
  token for the server, else ``admin.token`` in ``ATRIUM_DATA_DIR`` or ``./atrium-data``.

The profile is ``$XDG_CONFIG_HOME/atrium/config.toml``, else ``~/.config/atrium/config.toml``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

DEFAULT_SERVER = "http://127.0.0.1:8080"


@dataclass
class Resolved:
    """The resolved connection settings, with where the token came from."""

    server: str
    workspace: str
    token: Optional[str]
    token_source: Optional[str]
    looked: list = field(default_factory=list)


def _env(environ: Mapping[str, str], key: str) -> Optional[str]:
    v = environ.get(key)
    return v if v else None


def profile_path(environ: Mapping[str, str]) -> Optional[Path]:
    """The CLI profile file, or None when neither XDG_CONFIG_HOME nor HOME is absolute."""
    xdg = _env(environ, "XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "atrium" / "config.toml"
    home = _env(environ, "HOME")
    if home and os.path.isabs(home):
        return Path(home) / ".config" / "atrium" / "config.toml"
    return None


def _read_token(p: Path) -> Optional[str]:
    try:
        t = p.read_text().strip()
    except FileNotFoundError:
        return None
    return t or None


def resolve(server: Optional[str] = None, token: Optional[str] = None,
            workspace: Optional[str] = None,
            environ: Optional[Mapping[str, str]] = None) -> Resolved:
    """Resolves server, workspace and token in the CLI's documented order."""
    environ = os.environ if environ is None else environ
    path = profile_path(environ)
    profile: dict = {}
    if path is not None and path.exists():
        try:
            profile = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"invalid CLI profile {path}: {e}") from e
    server = (server or _env(environ, "ATRIUM_SERVER") or profile.get("default_server")
              or DEFAULT_SERVER).strip().rstrip("/")
    login = (profile.get("servers") or {}).get(server) or {}
    workspace = workspace or _env(environ, "ATRIUM_WORKSPACE") or login.get("workspace") or "default"
    looked: list = []
    if token and token.strip():
        return Resolved(server, workspace, token.strip(), "the token argument", looked)
    if _env(environ, "ATRIUM_TOKEN"):
        return Resolved(server, workspace, environ["ATRIUM_TOKEN"].strip(), "ATRIUM_TOKEN", looked)
    looked.append("token= / ATRIUM_TOKEN: not given")
    file = _env(environ, "ATRIUM_TOKEN_FILE")
    if file:
        t = _read_token(Path(file))
        if t is None:
            raise ValueError(f"ATRIUM_TOKEN_FILE {file} is missing or empty")
        return Resolved(server, workspace, t, f"ATRIUM_TOKEN_FILE {file}", looked)
    looked.append("ATRIUM_TOKEN_FILE: not set")
    if login.get("token"):
        return Resolved(server, workspace, login["token"], f"the profile {path} (login on {server})", looked)
    looked.append(f"the profile {path}: no login on {server}" if path else "the profile: no XDG_CONFIG_HOME or HOME")
    data = _env(environ, "ATRIUM_DATA_DIR")
    how = "ATRIUM_DATA_DIR" if data else "./atrium-data"
    f = Path(data or "atrium-data") / "admin.token"
    t = _read_token(f)
    if t is not None:
        return Resolved(server, workspace, t, f"{f.absolute()} ({how})", looked)
    looked.append(f"{f.absolute()} ({how}): not found")
    return Resolved(server, workspace, None, None, looked)
