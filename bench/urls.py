"""Bench URL map: the two comparison endpoints, then everything the project serves."""

from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/bare/", views.bare, name="bench-bare"),
    path("bench/lean/", views.lean, name="bench-lean"),
    path("bench/naive/", views.NaiveJitApi.as_view(), name="bench-naive"),
    path("", include("config.urls")),
]
