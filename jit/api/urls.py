from django.urls import path

from jit.api import views

urlpatterns = [path("marqeta/", views.JitFundingApi.as_view(), name="jit-funding")]
