from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0009_project_gallery_version"),
    ]

    operations = [
        migrations.RemoveField(model_name="project", name="gallery_version"),
    ]
