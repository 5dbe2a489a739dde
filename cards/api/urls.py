from django.urls import path

from cards.api import views

urlpatterns = [
    path("cardholders/", views.CardholderCreateApi.as_view(), name="cardholder-create"),
    path("cards/", views.CardCreateApi.as_view(), name="card-create"),
    path("cards/<str:card_token>/controls/", views.CardControlsApi.as_view(), name="card-controls"),
    path(
        "cardholders/<str:cardholder_token>/deposits/",
        views.DepositCreateApi.as_view(),
        name="deposit-create",
    ),
]
