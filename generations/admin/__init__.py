"""The Django admin, by area: accounts, projects and scenes, takes, people.

Each module registers its models with the admin site when it is imported; Django's admin
autodiscovery imports this package, which imports them all.
"""

from . import accounts, members, projects, takes, team  # noqa: F401
