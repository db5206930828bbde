"""Who may see what: staff only, read-only, for HTML pages and for the JSON API.

Invariant: no view behind these decorators runs for a request that is not from an
active staff user or (JSON API and /metrics only) a valid API token, and no such view
answers a method other than GET or HEAD. A token never authorises anything else: the
HTML pages and the admin ignore it, and it is only checked for GET and HEAD.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from pobsync_models.alerts import tokens

View = Callable[..., HttpResponse]


class ApiError(Exception):
    """A request the API refuses (bad parameter, page past the end): status + message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


SAFE_METHODS = ("GET", "HEAD")


def json_error(message: str, status: int, **headers: str) -> JsonResponse:
    """Every API error has the same shape: {"error": "<one line>"}."""
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def is_staff(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def staff_required(view: View) -> View:
    """HTML pages: anonymous -> the admin login with ?next=; logged-in non-staff -> 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_staff(request):
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return wrapper


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def api_auth_error(request: HttpRequest) -> JsonResponse | None:
    """The JSON 401/403 for a request that may not see API data, else None. A bearer
    token (read-only, GET/HEAD only) stands for a staff session; a wrong or revoked
    one is 401 even when a session is present."""
    token = bearer_token(request)
    if token is not None:
        if request.method in SAFE_METHODS and tokens.verify(token) is not None:
            return None
        return json_error("invalid or revoked API token", 401)
    if not request.user.is_authenticated:
        return json_error("authentication required: log in at /admin/ as a staff user", 401)
    if not is_staff(request):
        return json_error("staff only", 403)
    return None


def api_staff_required(view: View) -> View:
    """JSON views: anonymous -> 401 JSON, non-staff -> 403 JSON (never a redirect);
    Http404 and ApiError inside the view become JSON bodies with their status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        denied = api_auth_error(request)
        if denied is not None:
            return denied
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return json_error(str(exc) or "not found", 404)
        except ApiError as exc:
            return json_error(str(exc), exc.status)

    return wrapper


def api_require_safe(view: View) -> View:
    """GET and HEAD only; anything else is a 405 JSON body with an Allow header."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in SAFE_METHODS:
            return json_error(
                f"method {request.method} not allowed: the API is read-only",
                405,
                Allow=", ".join(SAFE_METHODS),
            )
        return view(request, *args, **kwargs)

    # A POST must meet the 405 above, not the CSRF middleware's HTML 403; a view that
    # never changes anything has nothing for CSRF to protect.
    wrapper.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapper
