"""Where a token may go: the origins an adapter was given, as a frozen value.

A token goes to whole origins (``origin=``, or a mount on ``/``) and to path prefixes of
an origin (``adapter.mount(session, "https://host/api/")``), compared exactly: scheme,
host and port. The adapter replaces its :class:`Scope` whole when it is mounted again, so
that ``send()`` reads it without a lock.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterable, Mapping

from ._http import Origin, format_origin, origin_of, split_prefix

__all__ = ["Scope", "mount_prefix"]


@dataclasses.dataclass(frozen=True)
class Scope:
    """The origins and path prefixes that get the token. Immutable.

    Attributes:
        origins: whole origins.
        paths: path prefixes (lowercase, ending with ``/``) of other origins.
        named: the origins, as ``scheme://host[:port]``, in the order given.
        served: the origins and prefixes, for messages.
    """

    origins: frozenset[Origin] = frozenset()
    paths: Mapping[Origin, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    named: tuple[str, ...] = ()
    served: tuple[str, ...] = ()

    @classmethod
    def of(cls, origin: str | Iterable[str] | None) -> Scope:
        """The scope of an adapter's ``origin=`` argument: whole origins only.

        Raises:
            ValueError: an origin is not ``scheme://host[:port]``, or has a path.
        """
        scope = cls()
        for item in (origin,) if isinstance(origin, str) else origin or ():
            named, path, _ = split_prefix(item, what="origin")
            if path != "/":
                raise ValueError(
                    f"origin is scheme://host[:port], without a path: {item[:200]!r};"
                    " to send the token under a path only, use adapter.mount(session, prefix)"
                )
            scope = scope.serving(named, "/")
        return scope

    def serving(self, origin: Origin, path: str) -> Scope:
        """This scope, and ``origin`` under ``path`` (``"/"``: the whole origin)."""
        name = format_origin(origin)
        origins, paths = self.origins, self.paths
        if path == "/":
            origins = origins | {origin}
            paths = {key: prefixes for key, prefixes in paths.items() if key != origin}
        elif origin not in origins:
            paths = {**paths, origin: (*paths.get(origin, ()), path)}
        return Scope(
            origins=origins,
            paths=paths,
            named=tuple(dict.fromkeys((*self.named, name))),
            served=tuple(dict.fromkeys((*self.served, name + path.rstrip("/")))),
        )

    def covers(self, url: str) -> bool:
        """Whether a request for ``url`` gets the token."""
        origin = origin_of(url)
        if origin in self.origins:
            return True
        paths = self.paths.get(origin) if origin is not None else None
        return paths is not None and urllib.parse.urlsplit(url).path.lower().startswith(paths)

    def describe(self, url: str) -> str:
        """``url``'s origin (and path, where the origin has prefixes), for a message."""
        origin = origin_of(url)
        if origin is None:
            return "a URL"
        where = format_origin(origin)[:100]
        if origin in self.paths:
            where += urllib.parse.urlsplit(url).path[:100]
        return where


def mount_prefix(prefix: str) -> tuple[Origin, str, str]:
    """``(origin, path, url)`` of a prefix given to ``adapter.mount``; see :func:`split_prefix`.

    Raises:
        ValueError: the prefix is not an http(s) origin with an optional path ending with
            ``/`` (one without could also match other hosts).
    """
    origin, path, url = split_prefix(prefix, what="prefix")
    if not urllib.parse.urlsplit(prefix).path.endswith("/"):
        raise ValueError(
            f"prefix must end with '/' ({prefix[:200]!r} would also match other hosts):"
            f" use {prefix[:200] + '/'!r}"
        )
    return origin, path.lower(), url
