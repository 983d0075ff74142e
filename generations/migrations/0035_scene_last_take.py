from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Coalesce


def number_from_the_takes_there_are(apps, schema_editor):
    """Each scene goes on from its highest take number (deleted ones cannot be known now)."""
    Scene = apps.get_model("generations", "Scene")
    Generation = apps.get_model("generations", "Generation")
    highest = (
        Generation.objects.filter(scene=OuterRef("pk"))
        .order_by()
        .values("scene")
        .annotate(highest=Max("take"))
        .values("highest")
    )
    Scene.objects.update(last_take=Coalesce(Subquery(highest), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0034_kept_spend"),
    ]

    operations = [
        migrations.AddField(
            model_name="scene",
            name="last_take",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(number_from_the_takes_there_are, migrations.RunPython.noop),
    ]
