"""A reject's identity survives runs: sheet + key (or content hash), first seen / times seen, superseded; backfilled."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The sheets' keys when this migration was written (ingestion.contract), frozen here.
KEYS = {
    "Fases": ("Fase_Id",),
    "Modelos": ("Produto_Id",),
    "FasesStandardModelos": ("ProdutoFase_ProdutoId", "ProdutoFase_FaseId", "ProdutoFase_Sequencia"),
    "Funcionarios": ("Funcionario_Id",),
    "FuncionariosFasesAptos": ("FuncionarioFase_FuncionarioId", "FuncionarioFase_FaseId"),
    "OrdensFabrico": ("Of_Id",),
    "FasesOrdemFabrico": ("FaseOf_Id",),
    "FuncionariosFaseOrdemFabrico": ("FuncionarioFaseOf_FaseOfId", "FuncionarioFaseOf_FuncionarioId"),
}
LIVE = ("open", "acknowledged", "ignored")


def _whole(value):
    """A key cell as the pipeline's typed key prints it (123, 123.0, '123' -> '123'); None when not a whole number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip()) if any(c in value for c in ".eE") else int(value.strip())
        except ValueError:
            return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    return str(value) if isinstance(value, int) and value >= 0 else None  # a negative id is a reject of its own


def backfill(apps, schema_editor):
    """Identity for every reject (as the pipeline computes it), then one live reject per identity, then superseded."""
    Reject = apps.get_model("ingestion", "Reject")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("UPDATE ingestion_reject SET identity = 'h:' || md5(original::text), first_seen_run_id = run_id")
    for reject in Reject.objects.exclude(reason="duplicate_key").only("id", "sheet", "original").iterator():
        keys = KEYS.get(reject.sheet)
        if not keys or not isinstance(reject.original, dict):
            continue
        parts = [_whole(reject.original.get(h)) for h in keys]
        if all(p is not None for p in parts):
            Reject.objects.filter(pk=reject.pk).update(identity="k:" + "|".join(parts))
    with schema_editor.connection.cursor() as cursor:
        # Rows of one run with the same identity: the 2nd, 3rd, ... get #2, #3 (as the pipeline does).
        cursor.execute(
            "UPDATE ingestion_reject r SET identity = r.identity || '#' || n.n FROM (SELECT id, row_number() OVER "
            "(PARTITION BY run_id, sheet, identity ORDER BY row_number, id) AS n FROM ingestion_reject) n "
            "WHERE n.id = r.id AND n.n > 1")
        # One live reject per identity: the last one met keeps the latest triage decision; the older ones are superseded.
        cursor.execute(
            "WITH live AS (SELECT id, sheet, identity, run_id, status, triaged_at, triaged_by_id, "
            "row_number() OVER (PARTITION BY sheet, identity ORDER BY run_id DESC, id DESC) AS rn, "
            "count(*) OVER (PARTITION BY sheet, identity) AS seen, min(run_id) OVER (PARTITION BY sheet, identity) AS first "
            "FROM ingestion_reject WHERE status = ANY(%s)), "
            "decided AS (SELECT DISTINCT ON (sheet, identity) sheet, identity, status, triaged_at, triaged_by_id FROM live "
            "WHERE status <> 'open' ORDER BY sheet, identity, triaged_at DESC NULLS LAST, run_id DESC) "
            "UPDATE ingestion_reject r SET times_seen = l.seen, first_seen_run_id = l.first, "
            "status = coalesce(d.status, r.status), triaged_at = coalesce(d.triaged_at, r.triaged_at), "
            "triaged_by_id = coalesce(d.triaged_by_id, r.triaged_by_id) "
            "FROM live l LEFT JOIN decided d ON d.sheet = l.sheet AND d.identity = l.identity WHERE r.id = l.id AND l.rn = 1",
            [list(LIVE)])
        cursor.execute(
            "WITH live AS (SELECT id, sheet, identity, row_number() OVER (PARTITION BY sheet, identity "
            "ORDER BY run_id DESC, id DESC) AS rn, max(run_id) OVER (PARTITION BY sheet, identity) AS last "
            "FROM ingestion_reject WHERE status = ANY(%s)) "
            "UPDATE ingestion_reject r SET status = 'superseded', closed_in_run_id = l.last FROM live l WHERE r.id = l.id AND l.rn > 1",
            [list(LIVE)])
        # A live reject whose sheet a later successful run read again without meeting the row: fixed or gone.
        cursor.execute(
            "UPDATE ingestion_reject r SET status = 'superseded', closed_in_run_id = ("
            "SELECT min(s.run_id) FROM ingestion_sheetrun s JOIN ingestion_ingestionrun i ON i.id = s.run_id "
            "WHERE s.sheet = r.sheet AND s.run_id > r.run_id AND NOT s.skipped AND i.status = 'succeeded') "
            "WHERE r.status = ANY(%s) AND EXISTS (SELECT 1 FROM ingestion_sheetrun s JOIN ingestion_ingestionrun i ON i.id = s.run_id "
            "WHERE s.sheet = r.sheet AND s.run_id > r.run_id AND NOT s.skipped AND i.status = 'succeeded')",
            [list(LIVE)])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred FK checks now, before the unique index is built


def unbackfill(apps, schema_editor):
    """Back: the identity columns go with the schema; superseded rejects become open again (the old statuses)."""
    apps.get_model("ingestion", "Reject").objects.filter(status="superseded").update(status="open")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0005_translated_names'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='reject',
            name='closed_in_run',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ingestion.ingestionrun', verbose_name='superseded by run'),
        ),
        migrations.AddField(
            model_name='reject',
            name='first_seen_run',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ingestion.ingestionrun', verbose_name='first seen in run'),
        ),
        migrations.AddField(
            model_name='reject',
            name='identity',
            field=models.CharField(blank=True, default='', help_text="The row's key in its sheet (k:…), or a hash of its cells when it has no usable key (h:…); #n marks the n-th row of one run with the same identity.", max_length=200, verbose_name='identity'),
        ),
        migrations.AddField(
            model_name='reject',
            name='times_seen',
            field=models.IntegerField(default=1, verbose_name='runs that met it'),
        ),
        migrations.AlterField(
            model_name='reject',
            name='status',
            field=models.CharField(choices=[('open', 'Open'), ('acknowledged', 'Acknowledged'), ('ignored', 'Ignored'), ('resolved', 'Resolved (row stored after re-validation or a corrected import)'), ('superseded', 'Superseded (the row was fixed or is gone in a later run)')], db_index=True, default='open', max_length=16, verbose_name='status'),
        ),
        migrations.RunPython(backfill, unbackfill),
        migrations.AddConstraint(
            model_name='reject',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['open', 'acknowledged', 'ignored'])), fields=('sheet', 'identity'), name='ingestion_reject_live_identity'),
        ),
    ]
