from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from generations import crypto
from generations.models import FlowAccount

SECRET_FIELDS = ("bearer_token", "session_cookie", "service_account_key", "access_token")


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Flow secret under the first key of FLOWSITE_FERNET_KEYS. "
        "Run it after putting a new key first in the list; then the old key can be removed."
    )

    def handle(self, *args, **options) -> None:
        # The ORM would hand back decrypted values and encrypt again on write; rotation works
        # on the stored text itself, so it goes through SQL.
        quote = connection.ops.quote_name
        table = quote(FlowAccount._meta.db_table)
        columns = ", ".join(quote(name) for name in SECRET_FIELDS)
        assignments = ", ".join(f"{quote(name)} = %s" for name in SECRET_FIELDS)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT id, {quote('label')}, {columns} FROM {table}")
            rows = cursor.fetchall()
            sealed = []
            for pk, label, *stored in rows:
                try:
                    rotated = [crypto.rotate(value or "") for value in stored]
                except crypto.UndecryptableSecret:
                    sealed.append(label)
                    continue
                cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*rotated, pk])
            if sealed:
                # Raised inside the transaction: no account is left half-rotated.
                raise CommandError(
                    "Nothing was re-encrypted: none of the keys in FLOWSITE_FERNET_KEYS decrypts "
                    f"the stored secrets of {', '.join(sealed)}. To rotate, keep the old key "
                    "listed after the new one (FLOWSITE_FERNET_KEYS=NEW,OLD), run this command, "
                    "then remove the old key. A `make run` install's old key is derived from "
                    "SECRET_KEY; SECURITY.md says how to print it."
                )
        self.stdout.write(f"Re-encrypted the secrets of {len(rows)} Flow account(s).")
