"""How the client authenticates to the authorization server (RFC 6749 section 2.3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ._redact import Redactor, form_encode

__all__ = ["ClientAuth", "ClientAuthMethod"]

#: How the client authenticates to the token endpoint (the names of RFC 7591 section 2).
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


class ClientAuth:
    """A client's identifier, its secret, and how it sends them with a request.

    ``auth_method`` defaults to ``"client_secret_basic"`` with a secret and ``"none"``
    (a public client: ``client_id`` as a form field) without. Raises ValueError for an
    unknown method, or one that needs a secret without it. The secret is kept out of the
    object's repr.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str | None,
        auth_method: ClientAuthMethod | None,
    ) -> None:
        if auth_method is None:
            auth_method = "none" if client_secret is None else "client_secret_basic"
        if auth_method not in ("client_secret_basic", "client_secret_post", "none"):
            raise ValueError(f"unknown auth_method {auth_method!r}")
        if auth_method != "none" and client_secret is None:
            raise ValueError(f"auth_method {auth_method!r} needs a client_secret")
        self.client_id = client_id
        self.method: ClientAuthMethod = auth_method
        self._secret = client_secret

    def __repr__(self) -> str:
        return f"ClientAuth(client_id={self.client_id!r}, method={self.method!r})"

    def apply(self, data: dict[str, str]) -> tuple[str, str] | None:
        """Add the client's credentials to the form ``data``, or return them for HTTP Basic."""
        if self.method == "client_secret_basic":
            assert self._secret is not None  # noqa: S101 - checked in __init__
            # RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
            return (form_encode(self.client_id), form_encode(self._secret))
        data["client_id"] = self.client_id
        if self.method == "client_secret_post":
            assert self._secret is not None  # noqa: S101 - checked in __init__
            data["client_secret"] = self._secret
        return None

    def redactor(self, secrets: Iterable[str | None] = ()) -> Redactor:
        """A :class:`Redactor` of ``secrets`` and the client's secret, in every form sent."""
        return Redactor(secrets, self.client_id, self._secret)
