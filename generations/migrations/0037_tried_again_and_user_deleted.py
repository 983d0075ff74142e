import re

from django.db import migrations, models

# How an uncertain take submitted again said so, in its reason alone (a username has no spaces).
SUBMITTED_AGAIN = re.compile(r"Submitted again by \S+ as take ([0-9]+)\.")


def number_from_the_reasons(apps, schema_editor):
    """Takes submitted again before this keep the number they were submitted again as, so they
    are not offered again. Read in Python: a reason edited since, or cut short, is left alone
    rather than failing the migration on a cast. Which failed takes were retried was never
    written down."""
    Generation = apps.get_model("generations", "Generation")
    takes = list(
        Generation.objects.filter(
            status="uncertain", reason__startswith="Submitted again by "
        ).only("pk", "reason")
    )
    found = []
    for take in takes:
        match = SUBMITTED_AGAIN.fullmatch(take.reason)
        if match:
            take.tried_again_as = int(match[1])
            found.append(take)
    Generation.objects.bulk_update(found, ["tried_again_as"], batch_size=500)


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
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(choices=[("invite.sent", "Invite made"), ("invite.used", "Invite used"), ("invite.revoked", "Invite withdrawn"), ("member.added", "Member added"), ("member.role", "Role changed"), ("member.removed", "Member removed"), ("project.created", "Project created"), ("project.renamed", "Project renamed"), ("project.archived", "Project archived"), ("project.restored", "Project restored"), ("project.deleted", "Project deleted"), ("project.duplicated", "Project duplicated"), ("takes.generated", "Takes generated"), ("take.cancelled", "Take cancelled"), ("account.granted", "Account granted"), ("account.revoked", "Account revoked"), ("account.checked", "Account checked again"), ("budget.changed", "Budget changed"), ("allowance.changed", "Allowance changed"), ("accounts.ordered", "Accounts chosen"), ("user.deleted", "User deleted")], editable=False, max_length=30),
        ),
        migrations.RunPython(number_from_the_reasons, migrations.RunPython.noop),
    ]
