from django.urls import path

from cards.api import views

urlpatterns = [
    path("cardholders/", views.CardholderCreateApi.as_view(), name="cardholder-create"),
    path("cards/", views.CardCreateApi.as_view(), name="card-create"),
    path(
        "cardholders/<str:cardholder_token>/deposits/",
        views.DepositCreateApi.as_view(),
        name="deposit-create",
    ),
    path(
        "cardholders/<str:cardholder_token>/balance/",
        views.BalanceApi.as_view(),
        name="cardholder-balance",
    ),
]
