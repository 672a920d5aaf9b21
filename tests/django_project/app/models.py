"""One model with a FileField and an ImageField on ``default_storage`` (the tests point
it at the backend under test), and one whose files go to each tenant's own storage."""

from django.db import models

from perceptra_storage.contrib.django import PerceptraStorage, active_profile

tenant_files = PerceptraStorage(profile=active_profile, location="tenant-files")
"""The profile is chosen per call: the request's tenant (ProfileMiddleware), or use_profile."""


class Document(models.Model):
    title = models.CharField(max_length=100)
    attachment = models.FileField(upload_to="docs/%Y")
    picture = models.ImageField(upload_to="pictures", blank=True)

    class Meta:
        app_label = "app"


class TenantDocument(models.Model):
    attachment = models.FileField(upload_to="docs", storage=tenant_files)

    class Meta:
        app_label = "app"
