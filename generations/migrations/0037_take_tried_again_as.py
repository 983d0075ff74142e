from django.db import migrations, models
from django.db.models import F, Value
from django.db.models.functions import Cast, Replace, StrIndex, Substr

AS_TAKE = " as take "


def number_from_the_reasons(apps, schema_editor):
    """An uncertain take submitted again said so in its reason alone ("Submitted again by bob
    as take 5."; a username has no spaces): its number is kept, so it is not offered again.
    Which failed takes were retried was never written down."""
    Generation = apps.get_model("generations", "Generation")
    number = Replace(Substr("reason", StrIndex("reason", Value(AS_TAKE)) + len(AS_TAKE)), Value("."))
    Generation.objects.filter(
        status="uncertain", reason__startswith="Submitted again by ", reason__contains=AS_TAKE
    ).update(tried_again_as=Cast(number, models.PositiveIntegerField()))


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0036_audit_project_created"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="tried_again_as",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(number_from_the_reasons, migrations.RunPython.noop),
    ]
