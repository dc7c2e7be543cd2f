"""manage.py release_gate: run the prodplan checks; on failure write docs/RELEASE_BLOCKED.md and exit non-zero."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.cache import cache
from django.core.checks import ERROR
from django.core.management import BaseCommand
from django.utils import timezone

from prodplan.checks import TAG, check_postgres_version, release_checks

RESULT_FILE = "release_gate.json"


class Command(BaseCommand):
    help = "Release gate: PostgreSQL, migrations, partitions, last ingestion, feature gates, benchmark goals."

    def handle(self, *args, **options):
        messages = check_postgres_version()
        if not any(m.level >= ERROR for m in messages):
            messages = release_checks.run_checks(tags=[TAG])
        # else: the database cannot be reached; every other check would need it, so that is the one reason.
        blocking = [m for m in messages if m.level >= ERROR]
        for message in messages:
            style = self.style.ERROR if message.level >= ERROR else self.style.SUCCESS
            self.stdout.write(style(f"[{message.id}] {message.msg}") + (f"\n    fix: {message.hint}" if message.hint else ""))
        result = {
            "ok": not blocking,
            "checked_at": timezone.now().isoformat(),
            "blocking": [{"id": m.id, "reason": m.msg, "action": m.hint} for m in blocking],
            "info": [m.msg for m in messages if m.level < ERROR],
        }
        cache.set("prodplan:release_gate", result, None)
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        (settings.VAR_DIR / RESULT_FILE).write_text(json.dumps(result, indent=2))
        blocked_doc = settings.RELEASE_BLOCKED_PATH
        if blocking:
            blocked_doc.parent.mkdir(parents=True, exist_ok=True)
            lines = ["# Release blocked", "", f"Checked {result['checked_at']}.", ""]
            lines += [f"- **{b['id']}** {b['reason']}\n  - action: {b['action'] or 'see the message'}" for b in result["blocking"]]
            blocked_doc.write_text("\n".join(lines) + "\n")
            self.stderr.write(self.style.ERROR(f"release blocked: {len(blocking)} reason(s), see {blocked_doc}"))
            raise SystemExit(1)
        if blocked_doc.exists():
            blocked_doc.unlink()
        self.stdout.write(self.style.SUCCESS("release gate passed"))
