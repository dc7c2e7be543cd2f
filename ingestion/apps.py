"""App config: Workbook ingestion: reader, staging, validation, rejects, merge and audit."""

from pathlib import Path

from django.apps import AppConfig
from django.core.management import CommandError, call_command
from django.utils.translation import gettext_lazy


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = gettext_lazy("Ingestion")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ingestion import checks, signals  # noqa: F401 - release-gate check; a succeeded run records the as-of
        from ingestion.selectors import freshness
        from prodplan.demo import add_demo_step
        from prodplan.pages import add_panel

        add_panel("overview", "freshness", freshness)
        add_demo_step(10, "ingestion.load_workbook", _demo_load_workbook)


def _demo_load_workbook(options: dict, say) -> None:
    """manage.py demo: the workbook (generated when missing, unless --no-generate), ingested."""
    workbook = Path(options["workbook"])
    if not workbook.exists():
        if options["no_generate"]:
            raise CommandError(f"workbook not found: {workbook}")
        workbook.parent.mkdir(parents=True, exist_ok=True)
        say(f"generating demo workbook {workbook} (scale {options['scale']})")
        call_command("make_demo_workbook", str(workbook), scale=options["scale"], seed=options["seed"],
                     as_of=options["as_of"])
    call_command("ingest", str(workbook))
