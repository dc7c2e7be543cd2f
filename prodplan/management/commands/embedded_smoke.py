"""manage.py embedded_smoke: migrate and query the configured database (CI's check of the embedded default)."""

from django.conf import settings
from django.core.management import BaseCommand, call_command
from django.db import connection


class Command(BaseCommand):
    help = "Migrate, create partitions and run a smoke query; prints the server version."

    def handle(self, *args, **options):
        call_command("migrate", "--noinput", verbosity=0)
        call_command("pgpartition", "--yes", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('server_version_num')::int, count(*) FROM pg_inherits")
            version, partitions = cursor.fetchone()
        self.stdout.write(
            f"embedded={settings.EMBEDDED_DATABASE} server_version_num={version} partitions={partitions} "
            f"cache={settings.CACHES['default']['BACKEND']} eager={settings.CELERY_TASK_ALWAYS_EAGER}"
        )
        if version < 150000:
            raise SystemExit("PostgreSQL 15+ required")
