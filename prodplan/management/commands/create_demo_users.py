"""manage.py create_demo_users: the demo's supervisor, steward and admin accounts (never in production)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError

from prodplan.commands import DatabaseCommand
from prodplan.roles import ensure_role_groups

DEMO_PASSWORD = "demo-pass-2025"


class Command(DatabaseCommand):
    help = "Create demo users supervisor, steward and admin (password demo-pass-2025). Refused unless DEBUG."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo users are only created with DJANGO_DEBUG=1 (they have a known password)")
        supervisors, stewards = ensure_role_groups()
        user_model = get_user_model()
        for username, group, staff, superuser in [
            ("supervisor", supervisors, False, False),
            ("steward", stewards, True, False),
            ("admin", None, True, True),
        ]:
            user, created = user_model.objects.get_or_create(username=username, defaults={"is_staff": staff, "is_superuser": superuser})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            if group is not None:
                user.groups.add(group)
        self.stdout.write("demo users ready: supervisor, steward, admin")
