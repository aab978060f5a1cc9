"""URLs of the django-oauth-toolkit test server.

DOT's own URLs live under ``/o/``. At the root: ``/token`` (DOT's token view, counted),
``/resource`` (a protected view that answers a refused token with 401, as RFC 6750
says), ``/resource-403`` (DOT's default protected view, which answers 403),
``/accounts/login/`` and ``/__stats``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from oauth2_provider import views as dot_views
from oauth2_provider.views.generic import ProtectedResourceView

from ..stats import TokenEndpointStats

STATS = TokenEndpointStats()


class CountedTokenView(dot_views.TokenView):
    """DOT's token view, with every answer counted."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = super().post(request, *args, **kwargs)
        STATS.record(
            request.POST.get("grant_type", ""),
            response.status_code,
            response.content,
            request.POST,
        )
        return response


def _whoami(request: HttpRequest) -> JsonResponse:
    owner = getattr(request, "resource_owner", None)
    return JsonResponse({"user": getattr(owner, "username", None)})


class ForbiddingResource(ProtectedResourceView):
    """DOT's default protected view: a missing, unknown or expired token gets a bare 403."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        return _whoami(request)


class UnauthorizedResource(ProtectedResourceView):
    """A protected view that answers a refused token with 401 and a Bearer challenge."""

    def unauthenticated_response(
        self, request: HttpRequest, oauthlib_request: Any = None
    ) -> HttpResponse:
        response = HttpResponse(status=401)
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        return _whoami(request)


def stats(request: HttpRequest) -> JsonResponse:
    return JsonResponse(STATS.snapshot())


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("token", CountedTokenView.as_view()),
    path("resource", UnauthorizedResource.as_view()),
    path("resource-403", ForbiddingResource.as_view()),
    path("accounts/login/", LoginView.as_view()),
    path("__stats", stats),
]
