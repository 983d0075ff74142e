from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0037_tried_again_and_user_deleted"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="refused_accounts",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
