"""The base of the SDK's typed objects: a dataclass read from the API's JSON, keeping the
whole answer in ``raw`` (fields the server adds later are never lost)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Optional, Type, TypeVar

T = TypeVar("T", bound="Record")


@dataclasses.dataclass(repr=False)
class Record:
    """An object of the API: its declared fields, the JSON it came from in ``raw``."""

    raw: Dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    #: The OpenAPI schema this class reads (checked by the test suite).
    schema: ClassVar[Optional[str]] = None
    #: Declared fields the schema does not name (a free-form part of the answer).
    undocumented: ClassVar[tuple] = ()
    #: The fields shown by ``repr`` (default: the first four declared).
    shown: ClassVar[tuple] = ()

    @classmethod
    def from_json(cls: Type[T], d: Dict[str, Any]) -> T:
        """Reads the declared fields of `d` (absent ones get their default)."""
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name == "raw":
                continue
            key = f.metadata.get("json", f.name)
            if key in d:
                kw[f.name] = d[key]
        return cls(raw=d, **kw)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the raw answer."""
        return self.raw.get(key, default)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON the server answered."""
        return dict(self.raw)

    def __repr__(self) -> str:
        names = self.shown or tuple(f.name for f in dataclasses.fields(self) if f.name != "raw")[:4]
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({inner})"


def field(json: Optional[str] = None, default: Any = None) -> Any:
    """A declared field, read from the JSON key `json` (default: the field's name)."""
    md = {"json": json} if json else {}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=md)
    return dataclasses.field(default=default, metadata=md)
