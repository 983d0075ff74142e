"""The hourly sweep of images nothing refers to since their upload (see generations/cleanup.py).

Created here, with update_or_create so running it twice (or after an admin edited the row)
leaves exactly one schedule, and never from AppConfig.ready().
"""

from django.db import migrations

NAME = "Flowsite image sweep"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "generations.cleanup.remove_abandoned_images",
            "schedule_type": "H",  # Schedule.HOURLY
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0022_account_credential_refusals"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
