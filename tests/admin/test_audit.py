"""Every write a person makes in the admin leaves an audit row: who, when, what changed, why."""

from __future__ import annotations

import pytest
from django.contrib.postgres.forms import SimpleArrayField

from cards import services
from cards.models import Card, Cardholder, MccGroup, Program, VelocityLimit
from ledger.models import AuditEvent
from tests.admin.conftest import login
from tests.cards.factories import VelocityLimitFactory

pytestmark = pytest.mark.django_db


def form_data(response, **fields) -> dict:
    """The page's inline formsets as they are (management forms and rows), plus `fields`."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, field in formset.management_form.fields.items():
            value = formset.management_form.initial.get(name, field.initial)
            data[f"{formset.prefix}-{name}"] = "" if value is None else value
        for row in formset.forms:
            for name, field in row.fields.items():
                value = row.initial.get(name, field.initial)
                if value is None or value is False:
                    continue
                if isinstance(field, SimpleArrayField):
                    value = ",".join(value)
                elif value is True:
                    value = "on"
                elif isinstance(value, list):
                    value = [getattr(item, "pk", item) for item in value]
                data[f"{row.prefix}-{name}"] = getattr(value, "pk", value)
    return {**data, **fields}


def test_given_ops_when_creating_a_program_then_audited(ops_user):
    client = login(ops_user)
    page = client.get("/admin/cards/program/add/")
    response = client.post(
        "/admin/cards/program/add/",
        form_data(
            page, name="travel", currency_code="EUR", timezone="Europe/Paris",
            default_hold_expiry_days=7,
        ),
    )  # fmt: skip
    assert response.status_code == 302, response.context["errors"]
    program = Program.objects.get(name="travel")
    event = AuditEvent.objects.get(action="create_program", target_id=str(program.pk))
    assert (event.actor, event.before, event.after["timezone"]) == (ops_user, None, "Europe/Paris")


def edit_email(client, holder: Cardholder, email: str):
    url = f"/admin/cards/cardholder/{holder.pk}/change/"
    data = form_data(
        client.get(url), first_name=holder.first_name, last_name=holder.last_name, email=email
    )
    return client.post(url, data)


def test_given_ops_when_editing_a_cardholder_email_then_audited_with_before_and_after(
    ops_user, card
):
    # given
    holder = card.cardholder
    # when
    response = edit_email(login(ops_user), holder, "new@example.com")
    # then
    assert response.status_code == 302, response.context["errors"]
    assert Cardholder.objects.get(pk=holder.pk).email == "new@example.com"
    event = AuditEvent.objects.get(action="update_cardholder")
    assert event.actor == ops_user
    assert (event.before["email"], event.after["email"]) == (holder.email, "new@example.com")


def test_given_ops_when_adding_a_cardholder_and_a_card_then_both_audited(ops_user, card):
    client = login(ops_user)
    page = client.get("/admin/cards/cardholder/add/")
    response = client.post(
        "/admin/cards/cardholder/add/",
        form_data(page, program=card.cardholder.program_id, token="user_new", first_name="Nu"),
    )
    assert response.status_code == 302, response.context["errors"]
    holder = Cardholder.objects.get(token="user_new")
    page = client.get("/admin/cards/card/add/")
    response = client.post(
        "/admin/cards/card/add/",
        form_data(
            page, cardholder=holder.pk, token="card_new", last_four="4242",
            expires_on="2030-01-01",
        ),
    )  # fmt: skip
    assert response.status_code == 302, response.context["errors"]
    new_card = Card.objects.get(token="card_new")
    assert AuditEvent.objects.filter(action="create_cardholder", target_id=str(holder.pk)).exists()
    assert AuditEvent.objects.filter(action="create_card", target_id=str(new_card.pk)).exists()


def test_given_ops_when_editing_the_daily_limit_inline_then_audited(ops_user, card):
    # given
    limit = VelocityLimitFactory(card=card, window="day", max_amount_minor=50_000)
    client = login(ops_user)
    url = f"/admin/cards/card/{card.pk}/change/"
    data = form_data(client.get(url), expires_on=card.expires_on.isoformat())
    prefix = next(key for key in data if key.endswith("-max_amount")).removesuffix("max_amount")
    data[f"{prefix}max_amount"] = "30.00"
    data[f"{prefix}active"] = "on"
    # when
    response = client.post(url, data)
    # then
    assert response.status_code == 302, response.context["errors"]
    assert VelocityLimit.objects.get(pk=limit.pk).max_amount_minor == 3_000
    event = AuditEvent.objects.get(action="set_velocity_limit")
    assert event.actor == ops_user
    assert (event.before["max_amount_minor"], event.after["max_amount_minor"]) == (50_000, 3_000)


def test_given_ops_when_adding_an_mcc_group_inline_then_audited(ops_user, card):
    program = card.cardholder.program
    client = login(ops_user)
    url = f"/admin/cards/program/{program.pk}/change/"
    data = form_data(
        client.get(url), name=program.name, timezone=program.timezone,
        default_hold_expiry_days=program.default_hold_expiry_days,
    )  # fmt: skip
    data["mcc_groups-TOTAL_FORMS"] = "1"
    data.update({"mcc_groups-0-name": "fuel", "mcc_groups-0-mccs": "5541,5542"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    group = MccGroup.objects.get(program=program, name="fuel")
    event = AuditEvent.objects.get(action="create_mcc_group")
    assert (event.target_id, event.actor, event.after["mccs"]) == (
        str(group.pk), ops_user, ["5541", "5542"],
    )  # fmt: skip


def test_given_audit_events_when_listed_then_what_changed_is_shown(ops_user, card):
    client = login(ops_user)
    edit_email(client, card.cardholder, "new@example.com")
    page = client.get("/admin/ledger/auditevent/").content.decode()
    assert f"email: &#x27;{card.cardholder.email}&#x27; -&gt; &#x27;new@example.com&#x27;" in page


def test_given_ops_when_saving_a_cardholder_unchanged_then_no_audit_row(ops_user, card):
    holder = card.cardholder
    response = edit_email(login(ops_user), holder, holder.email)
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="update_cardholder").exists()


def test_given_superuser_when_deleting_an_mcc_group_inline_then_audited_with_what_it_was(
    admin_user, card
):
    # given: (Ops may add and change MCC groups, not delete them)
    program = card.cardholder.program
    group = services.set_mcc_group(program=program, name="fuel", mccs=["5541"])
    client = login(admin_user)
    url = f"/admin/cards/program/{program.pk}/change/"
    data = form_data(
        client.get(url), name=program.name, timezone=program.timezone,
        default_hold_expiry_days=program.default_hold_expiry_days,
    )  # fmt: skip
    data["mcc_groups-0-DELETE"] = "on"
    # when
    response = client.post(url, data)
    # then
    assert response.status_code == 302, response.context["errors"]
    assert not MccGroup.objects.filter(pk=group.pk).exists()
    event = AuditEvent.objects.get(action="delete_mcc_group")
    assert (event.target_id, event.before["mccs"], event.after) == (str(group.pk), ["5541"], None)
