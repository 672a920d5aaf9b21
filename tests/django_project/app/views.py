"""The tenant of a request, and a view that reads a tenant's document."""

from typing import Any, Optional

from django.http import HttpResponse

from tests.django_project.app.models import TenantDocument


def tenant_of(request: Any) -> Optional[str]:
    """The profile of the tenant named by the request's X-Tenant header."""
    tenant = request.headers.get("X-Tenant")
    return f"tenant-{tenant}" if tenant else None


def document(request: Any, pk: int) -> HttpResponse:
    with TenantDocument.objects.get(pk=pk).attachment.open("rb") as stored:
        return HttpResponse(stored.read(), content_type="application/octet-stream")
