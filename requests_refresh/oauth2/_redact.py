"""Keeping secrets out of what the library shows: messages, logs, and the responses
attached to its errors.

A :class:`Redactor` masks the secrets one request carried, in every encoding the request
carried them; :func:`scrub` makes a response safe to attach to an error;
:func:`scrub_exception` does the same for the request a transport error carries.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
from collections.abc import Iterable
from typing import Any

import requests

from .._values import clean_server_text

__all__ = ["Redactor", "form_encode", "quote_error", "scrub", "scrub_exception"]

#: The longest ``error_description`` (or other server text) quoted in a message.
_MAX_DESCRIPTION = 300
#: The longest ``error`` code kept; RFC 6749 codes are a few words.
_MAX_ERROR = 100
# Secrets shorter than this are not searched for in server messages: masking every "s"
# of a one-letter test secret would garble the message and protect nothing.
_MIN_REDACTED_LENGTH = 4
_REDACTED = "<redacted>"
# Request headers that carry credentials: dropped from a request attached to an error.
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
# An answer's fields that hold secrets end so (access_token, refresh_token, id_token,
# device_code, client_secret, ...); masked in a response attached to an error.
_SECRET_FIELD_ENDINGS = ("token", "tokens", "code", "secret", "password", "assertion", "jwt")


class Redactor:
    """Masks the secrets one request carried, in every form the request carried them.

    The forms: as they are, form-encoded (``quote_plus``, as in the body, and ``quote``,
    with and without ``/`` kept), base64 of each of those, and base64 of the Basic
    credentials ``client_id:secret``, form-encoded as sent and unencoded. Base64 is matched without
    its ``=`` padding, so an echo that drops the padding is masked too.
    """

    def __init__(
        self, secrets: Iterable[str | None], client_id: str, client_secret: str | None
    ) -> None:
        forms: set[str] = set()
        for secret in (*secrets, client_secret):
            if secret and len(secret) >= _MIN_REDACTED_LENGTH:
                for form in (
                    secret,
                    urllib.parse.quote_plus(secret, safe=""),
                    urllib.parse.quote(secret, safe=""),
                    urllib.parse.quote(secret),
                ):
                    forms.add(form)
                    forms.add(_b64(form))
        if client_secret:
            # The Basic credentials, as sent (RFC 6749 section 2.3.1) and unencoded.
            forms.add(_b64(f"{form_encode(client_id)}:{form_encode(client_secret)}"))
            forms.add(_b64(f"{client_id}:{client_secret}"))
        # Longest first: a shorter form inside a longer one must not break the longer up.
        self._forms = sorted(
            (form for form in forms if len(form) >= _MIN_REDACTED_LENGTH), key=len, reverse=True
        )

    def text(self, text: str) -> str:
        """``text`` with every secret form masked."""
        for form in self._forms:
            text = text.replace(form, _REDACTED)
        return text

    def bytes(self, data: bytes) -> bytes:
        """``data`` with every secret form masked, as UTF-8 and as Latin-1."""
        marker = _REDACTED.encode()
        for form in self._forms:
            data = data.replace(form.encode(), marker)
            with contextlib.suppress(UnicodeEncodeError):
                data = data.replace(form.encode("latin-1"), marker)
        return data

    def quote(self, text: str, limit: int = _MAX_DESCRIPTION) -> str:
        """Server text fit for a message or a log: redacted, cut, one printable line."""
        return clean_server_text(self.text(text), limit)


def quote_error(
    raw_error: str, raw_description: object, redactor: Redactor
) -> tuple[str, str | None, str]:
    """An OAuth error answer's ``error`` and ``error_description`` fit for a message,
    and both as one detail (``"invalid_client: bad secret"``)."""
    error = redactor.quote(raw_error, _MAX_ERROR)
    description = redactor.quote(raw_description) if isinstance(raw_description, str) else None
    return error, description, f"{error}: {description}" if description else error


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


def scrub(
    response: requests.Response, body: bytes | None, payload: Any, redactor: Redactor
) -> None:
    """Make ``response`` safe to attach to an error.

    Its request loses its body (the refresh token, the client secret) and credential
    headers; its content becomes the body read, with every secret masked: those the
    request carried, and the answer's own (a JSON answer's ``access_token``,
    ``refresh_token``, ``id_token``, ``device_code``... at any depth, when it has any).
    It is empty when the body was over the size limit and not read, or when it is not
    a JSON object, whatever the status (a form-encoded answer, JSON nested too deep: its
    tokens cannot be told from the rest).
    """
    _scrub_request(response.request)
    if body is not None and _holds_secret_fields(payload):
        body = json.dumps(_mask_secret_fields(payload)).encode()
    elif body is not None and not isinstance(payload, dict):
        body = None
    # The body was read here from the raw stream; setting _content is how a requests
    # Response holds a body already read (response.content, .text, .json() use it).
    response._content = b"" if body is None else redactor.bytes(body)


def _is_secret_field(name: str) -> bool:
    """Whether an answer's field ``name`` holds a secret: a token, a code, a secret."""
    name = name.lower()
    return not name.startswith("error") and name.endswith(_SECRET_FIELD_ENDINGS)


def _holds_secret_fields(value: Any) -> bool:
    """Whether JSON ``value`` (nested at most 32 deep) has a secret field anywhere."""
    if isinstance(value, dict):
        return any(
            (_is_secret_field(key) and item is not None) or _holds_secret_fields(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_holds_secret_fields(item) for item in value)
    return False


def _mask_secret_fields(value: Any) -> Any:
    """A copy of JSON ``value`` with every secret field's value masked."""
    if isinstance(value, dict):
        return {
            key: _REDACTED
            if _is_secret_field(key) and item is not None
            else _mask_secret_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_secret_fields(item) for item in value]
    return value


def _scrub_request(request: requests.PreparedRequest | None) -> None:
    if request is None:
        return
    request.body = None
    for name in _CREDENTIAL_HEADERS:
        request.headers.pop(name, None)


def scrub_exception(exc: requests.RequestException) -> None:
    """Remove the credentials from the request a transport error carries."""
    request = getattr(exc, "request", None)
    if isinstance(request, requests.PreparedRequest):
        _scrub_request(request)


def form_encode(value: str) -> str:
    """``value`` form-encoded, as RFC 6749 section 2.3.1 encodes client credentials."""
    return urllib.parse.quote_plus(value, safe="")
