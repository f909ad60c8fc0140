"""Both roles may look at the FirmwareUpdate rows (the admin's read-only list): 0009 gave them
the view permission of every table that existed then, and FirmwareUpdate came after."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ("viewer", "operator")
CODENAME = "view_firmwareupdate"


def grant(apps, schema_editor):
    station = apps.get_app_config("station")
    station.models_module = True
    create_permissions(station, apps=apps, verbosity=0)
    station.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="station", codename=CODENAME)
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(view)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for view in Permission.objects.filter(content_type__app_label="station", codename=CODENAME):
        for group in Group.objects.filter(name__in=ROLES):
            group.permissions.remove(view)


class Migration(migrations.Migration):
    dependencies = [("station", "0010_firmware_update")]

    operations = [migrations.RunPython(grant, revoke)]
