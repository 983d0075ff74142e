"""The migrations say what the models are, in one line a fresh install can run."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

pytestmark = pytest.mark.django_db


def test_every_model_change_has_its_migration():
    # Exits non-zero (SystemExit) when a model differs from what the migrations build.
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)


def test_the_studios_migrations_have_one_newest_so_a_fresh_install_can_migrate():
    # Two branches each adding one leave two leaves: `migrate` refuses to start (a merge that
    # renumbers one must also move what it depends on).
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    leaves = [name for app, name in loader.graph.leaf_nodes() if app == "generations"]
    assert len(leaves) == 1, leaves
