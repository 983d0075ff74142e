from django.db import migrations

# What Flowsite wrote at the start of an uncertain take's or upscale's reason, and the
# invitation it wrote into it, which the card now adds only while it can still be taken up.
UNCERTAIN = "Flowsite could not confirm that "
INVITATION = " Submit it again if you want it."


def drop_the_invitation(apps, schema_editor):
    """Reasons stored before this keep what they say but the invitation, so a take submitted
    again since no longer invites a second time. Read in Python: a reason edited since (its
    start or the invitation no longer as Flowsite wrote them) is left alone."""
    for name in ("Generation", "Upscale"):
        model = apps.get_model("generations", name)
        found = []
        for row in model.objects.filter(reason__contains=INVITATION).only("pk", "reason"):
            # (SQLite's LIKE ignores case: the exact words are judged here.)
            if row.reason.startswith(UNCERTAIN) and INVITATION in row.reason:
                row.reason = row.reason.replace(INVITATION, "", 1)
                found.append(row)
        model.objects.bulk_update(found, ["reason"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0038_take_refused_accounts"),
    ]

    operations = [
        migrations.RunPython(drop_the_invitation, migrations.RunPython.noop),
    ]
