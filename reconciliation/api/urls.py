from django.urls import path

from reconciliation.api import views

urlpatterns = [path("marqeta/", views.WebhookReceiveApi.as_view(), name="marqeta-webhooks")]
