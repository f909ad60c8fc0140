"""The two roles as Django groups: "viewer" sees every table of the station app (and the
OCPP and job tables), "operator" sees them too and may operate the station. Permissions are
made here first (Django makes them only after all migrations have run)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER, OPERATOR = "viewer", "operator"
OPERATE = "operate_station"


def make_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    views = Permission.objects.filter(content_type__app_label="station", codename__startswith="view_")
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.add(*views)
    operator, _ = Group.objects.get_or_create(name=OPERATOR)
    operator.permissions.add(*views, Permission.objects.get(content_type__app_label="station", codename=OPERATE))


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[VIEWER, OPERATOR]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("station", "0008_operator_tables"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(make_roles, drop_roles)]
