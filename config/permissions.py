"""API authorization: each view names the Django permission each HTTP method needs.

Tokens belong to users; users get permissions through the `Ops` and `Support` groups (or are
superusers). A method a view does not name is refused: nothing is open by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

if TYPE_CHECKING:  # rest_framework.views imports this module through the settings
    from rest_framework.request import Request
    from rest_framework.views import APIView


class MethodPermission(BasePermission):
    message = "your account may not do this"

    def has_permission(self, request: Request, view: APIView) -> bool:
        needed = getattr(view, "required_permissions", {}).get(request.method)
        user = request.user
        return bool(needed and user and user.is_authenticated and user.has_perm(needed))
