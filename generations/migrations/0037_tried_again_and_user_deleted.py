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
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(choices=[("invite.sent", "Invite made"), ("invite.used", "Invite used"), ("invite.revoked", "Invite withdrawn"), ("member.added", "Member added"), ("member.role", "Role changed"), ("member.removed", "Member removed"), ("project.created", "Project created"), ("project.renamed", "Project renamed"), ("project.archived", "Project archived"), ("project.restored", "Project restored"), ("project.deleted", "Project deleted"), ("project.duplicated", "Project duplicated"), ("takes.generated", "Takes generated"), ("take.cancelled", "Take cancelled"), ("account.granted", "Account granted"), ("account.revoked", "Account revoked"), ("account.checked", "Account checked again"), ("budget.changed", "Budget changed"), ("allowance.changed", "Allowance changed"), ("accounts.ordered", "Accounts chosen"), ("user.deleted", "User deleted")], editable=False, max_length=30),
        ),
        migrations.RunPython(number_from_the_reasons, migrations.RunPython.noop),
    ]
