"""One view: a tenant's document, read through the model's FileField."""

from django.urls import path

from tests.django_project.app.views import document

urlpatterns = [path("documents/<int:pk>/", document)]
