"""The admin enforces the groups, over every registered model and every admin URL:

- a staff user in no group sees nothing: every admin URL but their own account pages is
  refused, the index lists no model, and nothing is written;
- `Ops` gets exactly what its group grants wherever the admin allows it at all (the
  superuser is the reference of "at all"): add and change pages with a Save button where
  the group has the permission, read-only pages or 403 where it has not, never a delete.

(Support's read-only side, over every URL and action, is tests/admin/test_support_read_only.)
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from tests.security.conftest import written_state
from tests.security.endpoints import all_endpoints

pytestmark = pytest.mark.django_db

# Admin pages any staff user may open: their own session and password, the (empty) index.
OWN_PAGES = {
    "admin-home",
    "admin:index",
    "admin:password_change",
    "admin:password_change_done",
    "admin:jsi18n",
    "admin:login",
    "admin:logout",
    "admin:view_on_site",  # Django's redirect to the object's public URL (cards have none)
}
SAVE_BUTTON = 'name="_save"'


def login_as(username: str, *, group: str | None = None, superuser: bool = False) -> Client:
    user = get_user_model().objects.create_user(
        username=username, password=f"{username}-pass-123456", is_staff=True
    )
    user.is_superuser = superuser
    user.save()
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def test_given_staff_in_no_group_when_opening_every_admin_url_then_refused_and_nothing_written(
    one_of_everything,
):
    # given
    client = login_as("groupless")
    endpoints = [e for e in all_endpoints() if e.area == "admin" and e.name not in OWN_PAGES]
    before = written_state()
    # when
    answers = {
        (method, endpoint.path): getattr(client, method)(endpoint.path).status_code
        for endpoint in endpoints
        for method in ("get", "post")
    }
    index = client.get("/admin/").content.decode()
    # then
    opened = {request: status for request, status in answers.items() if status < 300}
    assert opened == {}
    assert all(status < 500 for status in answers.values())
    assert "/admin/cards/" not in index
    assert "/admin/ledger/" not in index
    assert written_state() == before


def _page(client: Client, url: str) -> tuple[int, bool]:
    """(status, whether the page has a Save button)."""
    response = client.get(url)
    return response.status_code, SAVE_BUTTON in response.content.decode()


def _model_pages(model) -> tuple[str, str]:
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    row = model._default_manager.order_by("pk").first()
    return reverse(f"{name}_add"), reverse(f"{name}_change", args=[row.pk if row else 0])


def test_given_ops_when_opening_every_model_then_exactly_what_the_group_grants(
    one_of_everything,
):
    # given
    superuser, ops = login_as("root", superuser=True), login_as("operator", group="Ops")
    granted = set(Group.objects.get(name="Ops").permissions.values_list("codename", flat=True))
    checked = 0
    # when / then
    for model in admin.site._registry:
        add, change = _model_pages(model)
        name = model._meta.model_name
        if model._default_manager.exists():
            allowed_status, allowed_save = _page(superuser, change)
            status, save = _page(ops, change)
            if f"view_{name}" not in granted and f"change_{name}" not in granted:
                assert status == 403, (model, change)
            else:
                assert status == allowed_status == 200, (model, change)
                assert save == (allowed_save and f"change_{name}" in granted), (model, change)
        add_allowed = superuser.get(add).status_code == 200
        assert ops.get(add).status_code == (
            200 if add_allowed and f"add_{name}" in granted else 403
        ), (model, add)
        checked += 1
    assert checked == len(admin.site._registry)
    assert not any(codename.startswith("delete_") for codename in granted)
