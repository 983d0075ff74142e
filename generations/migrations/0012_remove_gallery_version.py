from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0011_account_grants"),
    ]

    operations = [
        migrations.RemoveField(model_name="project", name="gallery_version"),
    ]
