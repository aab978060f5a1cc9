"""What the grants and flows share: a token endpoint they own, the fields they send, and
the endpoints' URLs, explicit or discovered from the issuer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import requests

from ._exchange import ClientAuthMethod, TokenEndpoint
from .discovery import ServerMetadata, resolve_endpoints

__all__ = ["EndpointGrant", "open_endpoint", "refuse_reserved"]

_Grant = TypeVar("_Grant", bound="EndpointGrant")


def refuse_reserved(
    extra_params: Mapping[str, str] | None, reserved: Iterable[str], setter: str
) -> None:
    """Raise ValueError when ``extra_params`` sets a field the ``setter`` sets itself.

    ``setter`` names it in the message: ``"grant"`` or ``"flow"``.
    """
    found = sorted(set(reserved).intersection(extra_params or ()))
    if found:
        hint = " (use scope=)" if "scope" in found else ""
        raise ValueError(f"extra_params cannot set {found}: the {setter} sets them{hint}")


def open_endpoint(
    client_id: str,
    client_secret: str | None,
    *,
    issuer: str | None,
    urls: Mapping[str, str | None],
    auth_method: ClientAuthMethod | None,
    timeout: float,
    session: requests.Session | None,
    allow_insecure_http: bool,
    owner: str,
) -> tuple[TokenEndpoint, dict[str, str], ServerMetadata | None]:
    """The client's :class:`TokenEndpoint`, and the flow's URLs.

    ``urls`` maps metadata names (``"token_endpoint"``) to the URL the caller passed, or
    None: the missing ones are discovered from ``issuer`` (see
    :func:`~requests_refresh.oauth2.discovery.resolve_endpoints`), with the same
    ``timeout``, ``session`` and ``allow_insecure_http`` as the endpoint. Returns the
    endpoint (the caller closes it), the URLs by name, and the metadata when it was
    fetched. ``owner`` names the function in a refusal of plain http.
    """
    resolved, metadata = resolve_endpoints(
        issuer,
        urls,
        timeout=timeout,
        session=session,
        allow_insecure_http=allow_insecure_http,
    )
    endpoint = TokenEndpoint(
        resolved["token_endpoint"],
        client_id,
        client_secret,
        auth_method=auth_method,
        timeout=timeout,
        session=session,
        allow_insecure_http=allow_insecure_http,
        owner=owner,
    )
    return endpoint, resolved, metadata


class EndpointGrant:
    """A grant that owns a :class:`TokenEndpoint` and sends ``scope`` and ``extra_params``.

    Builds the endpoint (named after the grant's class in a refusal of plain http),
    refuses ``extra_params`` that set one of ``reserved``, and closes the endpoint's own
    session in :meth:`close` or at the end of a ``with`` block.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        reserved: Iterable[str],
        auth_method: ClientAuthMethod | None,
        scope: str | None,
        extra_params: Mapping[str, str] | None,
        timeout: float | tuple[float, float],
        session: requests.Session | None,
        allow_insecure_http: bool,
        token_types: Iterable[str] = ("Bearer",),
    ) -> None:
        refuse_reserved(extra_params, reserved, "grant")
        self.endpoint = TokenEndpoint(
            token_url,
            client_id,
            client_secret,
            auth_method=auth_method,
            timeout=timeout,
            session=session,
            allow_insecure_http=allow_insecure_http,
            owner=type(self).__name__,
            token_types=token_types,
        )
        self.scope = scope
        self.extra_params = dict(extra_params or {})

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self.endpoint.token_url

    @property
    def client_id(self) -> str:
        """The client identifier."""
        return self.endpoint.client_id

    def __enter__(self: _Grant) -> _Grant:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the grant's own session (not one that was passed in)."""
        self.endpoint.close()

    def _params(self, fields: Mapping[str, str]) -> dict[str, str]:
        """``fields``, then ``scope`` when set, then ``extra_params``: the form to send."""
        params = dict(fields)
        if self.scope is not None:
            params["scope"] = self.scope
        params.update(self.extra_params)
        return params
