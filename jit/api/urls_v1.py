"""The gateway's part of the internal API (mounted under /api/v1/)."""

from django.urls import path

from jit.api import views

urlpatterns = [
    path(
        "cardholders/<str:cardholder_token>/balance/",
        views.CardholderBalanceApi.as_view(),
        name="cardholder-balance",
    ),
    path(
        "cards/<str:card_token>/transactions/",
        views.CardTransactionsApi.as_view(),
        name="card-transactions",
    ),
]
