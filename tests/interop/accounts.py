"""The user and the clients every test server registers, the same on each server."""

from __future__ import annotations

import dataclasses

USERNAME = "alice"
PASSWORD = "alice-password-1"  # a test user on a loopback server
#: RFC 8252 section 7.3: a loopback redirect, any port at the time of the request.
REDIRECT_URI = "http://127.0.0.1/callback"


@dataclasses.dataclass(frozen=True)
class Client:
    """A client registered on a test server."""

    client_id: str
    client_secret: str | None  # None: a public client
    grant: str  # what the client is registered for

    @property
    def public(self) -> bool:
        return self.client_secret is None


#: Authorization code with PKCE (and refresh): a native app, no secret.
PUBLIC = Client("interop-public", None, "authorization_code")
#: Authorization code with PKCE (and refresh): a web app with a secret.
CONFIDENTIAL = Client(
    "interop-confidential", "confidential-secret-0123456789", "authorization_code"
)
#: Client credentials: a service.
SERVICE = Client("interop-service", "service-secret-0123456789", "client_credentials")
#: The device flow (RFC 8628): a device without a browser, no secret.
DEVICE = Client("interop-device", None, "urn:ietf:params:oauth:grant-type:device_code")

CLIENTS = (PUBLIC, CONFIDENTIAL, SERVICE, DEVICE)
