"""Every URL the project serves, read from the URLconf itself, each made concrete with sample
values, so that an endpoint added tomorrow is swept by the security tests without a test edit.

A pattern with regex parts has no general sample: it must be named in REGEX_SAMPLES, and an
unknown one fails the sweep (`UnsampledPattern`) until someone says what to request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern

# Deliberately public, each for a reason; everything else must refuse an unknown caller.
PUBLIC = {
    "healthz": "liveness probe of the load balancer: answers {'status': 'ok'}, reads nothing",
    "readyz": "readiness probe: says whether PostgreSQL and Redis answer, nothing more",
    "metrics": "Prometheus scrape, restricted by network policy (docs/operations.md)",
    "admin:login": "the login form itself",
    "admin:logout": "logging out: a POST that ends the caller's own session, if any",
}

# Regex patterns (Django's admin) and the URL to request for each, by name or by view.
REGEX_SAMPLES = {
    "admin:app_list": "/admin/cards/",
    "catch_all_view": "/admin/no-such-page/",
}

# Sample values of path parameters, by name. Ids are those of real rows where there are any,
# so a view that checked existence before permission could not hide behind a 404.
PARAMETERS = {
    "card_token": "card_91b2",
    "cardholder_token": "user_7f3a",
    "day": "2026-05-07",
}
VIEW_ON_SITE = "admin/r/"  # the admin's "view on site" link: a card
ROW_PARAMETERS = {  # parameter -> the model whose first row it names
    "card_id": "cards.Card",
    "exception_id": "reconciliation.ReconciliationException",
    "file_id": "reconciliation.ClearingFile",
    "id": "auth.User",
}
ADMIN_MODEL_ROUTE = re.compile(r"^admin/(?P<app>\w+)/(?P<model>\w+)/<")
ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def _first_pk(label: str) -> str:
    row = apps.get_model(label)._default_manager.order_by("pk").first()
    return str(row.pk) if row is not None else "1"


def _sample(parameter: str, route: str) -> str:
    if parameter in PARAMETERS:
        return PARAMETERS[parameter]
    if parameter in ROW_PARAMETERS:
        return _first_pk(ROW_PARAMETERS[parameter])
    if route.startswith(VIEW_ON_SITE):
        card_type = ContentType.objects.get_by_natural_key("cards", "card")
        return str(card_type.pk) if parameter == "content_type_id" else _first_pk("cards.Card")
    admin_model = ADMIN_MODEL_ROUTE.match(route)
    if parameter == "object_id" and admin_model:
        return _first_pk(f"{admin_model['app']}.{admin_model['model']}")
    raise UnsampledPattern(f"no sample value for <{parameter}> in {route}")


class UnsampledPattern(LookupError):
    """A URL pattern the sweep cannot make a URL for: add it to REGEX_SAMPLES or PARAMETERS."""


@dataclass(frozen=True)
class Endpoint:
    path: str  # concrete, starting with "/"
    name: str  # "namespace:name", or the view's name for unnamed patterns

    @property
    def area(self) -> str:
        """Who calls it: `admin`, `marqeta` (Basic auth), `api` (tokens) or `public`."""
        if self.name in PUBLIC:
            return "public"
        if self.path.startswith("/admin/"):
            return "admin"
        if self.path.startswith(("/jit/", "/webhooks/")):
            return "marqeta"
        return "api"


def _concrete(route: str) -> str:
    return "/" + ROUTE_PARAMETER.sub(lambda match: _sample(match.group(1), route), route)


def _walk(patterns: list, prefix: str, namespace: str | None) -> list[Endpoint]:
    found: list[Endpoint] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace if pattern.namespace is None else pattern.namespace
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            continue
        found.append(_endpoint(pattern, prefix, namespace))
    return found


def _endpoint(pattern: URLPattern, prefix: str, namespace: str | None) -> Endpoint:
    view = getattr(pattern.callback, "__name__", str(pattern.callback))
    name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name or view
    if isinstance(pattern.pattern, RegexPattern):
        if name not in REGEX_SAMPLES:
            raise UnsampledPattern(
                f"no sample URL for the regex pattern {pattern.pattern} ({name})"
            )
        return Endpoint(REGEX_SAMPLES[name], name)
    return Endpoint(_concrete(prefix + str(pattern.pattern)), name)


def all_endpoints() -> list[Endpoint]:
    """Every pattern of the root URLconf, in order, with a concrete path."""
    return _walk(get_resolver().url_patterns, "", None)
