from django.db import migrations, models


def quota_refusals(apps, schema_editor):
    """The ids 0038 kept (each a refusal for the model's daily quota), as refusals that say
    why: {"<id>": "model quota"}."""
    Generation = apps.get_model("generations", "Generation")
    Generation.objects.filter(refused_accounts=[]).update(refused_accounts={})
    takes = [
        take
        for take in Generation.objects.exclude(refused_accounts={}).only("refused_accounts")
        if isinstance(take.refused_accounts, list)
    ]
    for take in takes:
        take.refused_accounts = {str(pk): "model quota" for pk in take.refused_accounts}
    Generation.objects.bulk_update(takes, ["refused_accounts"], batch_size=500)


def quota_ids(apps, schema_editor):
    """Back to 0038's list: the accounts that refused for the model's daily quota alone."""
    Generation = apps.get_model("generations", "Generation")
    Generation.objects.filter(refused_accounts={}).update(refused_accounts=[])
    takes = [
        take
        for take in Generation.objects.exclude(refused_accounts=[]).only("refused_accounts")
        if isinstance(take.refused_accounts, dict)
    ]
    for take in takes:
        take.refused_accounts = [
            int(pk) for pk, why in take.refused_accounts.items() if why == "model quota"
        ]
    Generation.objects.bulk_update(takes, ["refused_accounts"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0038_take_model_quota_accounts"),
    ]

    operations = [
        migrations.RenameField(
            model_name="generation",
            old_name="model_quota_accounts",
            new_name="refused_accounts",
        ),
        migrations.AlterField(
            model_name="generation",
            name="refused_accounts",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.RunPython(quota_refusals, quota_ids),
    ]
