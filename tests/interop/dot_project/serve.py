"""Start the django-oauth-toolkit test server: ``python -m tests.interop.dot_project.serve``.

Binds 127.0.0.1 on a port the system chooses, migrates a fresh SQLite database
(``INTEROP_DB``), registers the test user and clients, writes its origin to the file
named by ``INTEROP_URL_FILE``, then serves with waitress (threaded) until terminated.
``INTEROP_ACCESS_TTL`` sets the access token lifetime in seconds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def main() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    origin = f"http://127.0.0.1:{listener.getsockname()[1]}"
    os.environ["INTEROP_ORIGIN"] = origin
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.interop.dot_project.settings")

    import django  # noqa: PLC0415 - after the environment the settings read is set
    from django.core.management import call_command  # noqa: PLC0415
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    register()
    application = get_wsgi_application()

    import waitress  # noqa: PLC0415

    Path(os.environ["INTEROP_URL_FILE"]).write_text(origin)
    waitress.serve(application, sockets=[listener], threads=48, connection_limit=256, _quiet=True)


def register() -> None:
    """The test user and the clients of ``accounts.py``."""
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from oauth2_provider.models import get_application_model  # noqa: PLC0415

    from ..accounts import CLIENTS, PASSWORD, REDIRECT_URI, USERNAME  # noqa: PLC0415

    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    application = get_application_model()
    grants = {
        "authorization_code": application.GRANT_AUTHORIZATION_CODE,
        "client_credentials": application.GRANT_CLIENT_CREDENTIALS,
        application.GRANT_DEVICE_CODE: application.GRANT_DEVICE_CODE,
    }
    for client in CLIENTS:
        fields = {
            "name": client.client_id,
            "client_id": client.client_id,
            "client_type": (
                application.CLIENT_PUBLIC if client.public else application.CLIENT_CONFIDENTIAL
            ),
            "authorization_grant_type": grants[client.grant],
            "redirect_uris": REDIRECT_URI if client.grant == "authorization_code" else "",
            "user": user,
            "skip_authorization": False,
            "algorithm": "",
        }
        if client.client_secret is not None:
            fields["client_secret"] = client.client_secret  # hashed as it is saved
        application.objects.create(**fields)


if __name__ == "__main__":
    main()
