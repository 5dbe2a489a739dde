"""URL map: the contract in docs/architecture.md §5."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import dashboard, health

admin.site.site_header = "Card program operations"
admin.site.site_title = "Card program"
admin.site.index_title = "Operations"
admin.site.disable_action("delete_selected")  # nothing money-related is deleted in bulk

handler404 = "config.errors.not_found"

urlpatterns = [
    # Our admin pages first: the admin site's own patterns end in a catch-all.
    path("admin/", admin.site.admin_view(dashboard.admin_index), name="admin-home"),
    path(
        "admin/dashboard/",
        admin.site.admin_view(dashboard.dashboard_view),
        name="ops-dashboard",
    ),
    path("admin/", admin.site.urls),
    path("jit/", include("jit.api.urls")),
    path("api/v1/", include("cards.api.urls")),
    path("api/v1/", include("jit.api.urls_v1")),
    path("webhooks/", include("reconciliation.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
]
