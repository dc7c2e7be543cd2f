"""Operations: release gate, health when a dependency is down, deploy checks, JSON logs without names."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from prodplan.logging import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture
def gate_paths(settings, tmp_path):
    settings.BENCH_RESULTS_DIR = tmp_path / "bench"
    settings.BENCH_RESULTS_DIR.mkdir()
    settings.RELEASE_BLOCKED_PATH = tmp_path / "RELEASE_BLOCKED.md"
    settings.VAR_DIR = tmp_path / "var"
    return settings


def _truncate_runs():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ingestion_ingestionrun CASCADE")


def test_release_gate_blocks_without_data_and_says_how_to_fix(gate_paths, client):
    _truncate_runs()
    with pytest.raises(SystemExit) as exit_info:
        call_command("release_gate")
    assert exit_info.value.code == 1
    text = gate_paths.RELEASE_BLOCKED_PATH.read_text()
    assert "no workbook has been ingested" in text and "manage.py ingest" in text
    health = client.get("/api/health").json()
    assert health["release_gate"]["ok"] is False


def test_release_gate_passes_on_ingested_data_and_blocks_on_a_missed_benchmark(ingested, gate_paths):
    call_command("pgpartition", "--yes", verbosity=0)
    (gate_paths.BENCH_RESULTS_DIR / "ingest.json").write_text(json.dumps({"met": {"cold_seconds": True}}))
    call_command("release_gate")
    assert not gate_paths.RELEASE_BLOCKED_PATH.exists()
    (gate_paths.BENCH_RESULTS_DIR / "api_load.json").write_text(json.dumps({"met": {"orders_p95_ms": False}}))
    with pytest.raises(SystemExit):
        call_command("release_gate")
    assert "api_load.json misses its goal(s): orders_p95_ms" in gate_paths.RELEASE_BLOCKED_PATH.read_text()


def test_health_503_when_broker_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def test_health_503_when_database_is_down():
    env = {**os.environ, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/prodplan", "DJANGO_SETTINGS_MODULE": "prodplan.settings"}
    env.pop("REDIS_URL", None)
    code = (
        "import django; django.setup(); from django.test import Client; r = Client().get('/api/health'); "
        "import json; print(r.status_code, json.dumps(r.json()['failing']))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == '503 ["database"]', result.stderr[-2000:]


def test_commands_on_an_unreachable_database_say_why_in_one_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/prodplan_no_such_database",
           "PRODPLAN_RELEASE_BLOCKED_PATH": str(tmp_path / "RELEASE_BLOCKED.md"), "PRODPLAN_VAR_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    ingest = subprocess.run([sys.executable, "manage.py", "ingest", str(tmp_path / "any.xlsx")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert ingest.returncode == 1 and "Traceback" not in ingest.stderr, ingest.stderr[-2000:]
    assert "database unavailable" in ingest.stderr and "prodplan_no_such_database" in ingest.stderr
    gate = subprocess.run([sys.executable, "manage.py", "release_gate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert gate.returncode == 1 and "Traceback" not in gate.stderr, gate.stderr[-2000:]
    blocked = (tmp_path / "RELEASE_BLOCKED.md").read_text()
    assert "prodplan.E001" in blocked and blocked.count("- **") == 1  # the one reason: every other check needs it


def test_production_settings_pass_check_deploy():
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_HTTPS": "1",
        "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-with-enough-entropy-1234567890",
        "DJANGO_ALLOWED_HOSTS": "prodplan.example.com",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the browser tests set it for their own process only
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_json_log_lines_carry_request_id_and_no_employee_names(client, caplog, tmp_path, empty_tables):
    from ingestion.services import ingest_workbook
    from tests.ingestion.builders import write_workbook

    with caplog.at_level(logging.INFO):
        ingest_workbook(path=str(write_workbook(tmp_path / "wb.xlsx")))
        client.get("/api/health", HTTP_X_REQUEST_ID="req-12345678")
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines and all(json.loads(line)["msg"] is not None for line in lines)
    joined = "\n".join(lines)
    assert "Ana Silva" not in joined and "Rui Costa" not in joined
    steps = [json.loads(line) for line in lines if '"step"' in line]
    assert {"staged", "merged", "finished"} <= {s["step"] for s in steps}
    assert all(s["request_id"] == "-" for s in steps)  # no request id leaks from the web request into other work
    health_lines = [json.loads(line) for line in lines if "/api/health" in line]
    assert all(line["request_id"] == "req-12345678" for line in health_lines)


def test_explain_hot_queries_writes_plans(ingested, tmp_path):
    call_command("explain_hot_queries", out=str(tmp_path))
    written = sorted(p.name for p in tmp_path.glob("*.txt"))
    assert written == ["kpi_overview.txt", "order_detail.txt", "orders_list.txt", "quality_overview.txt", "schedule_current.txt"]
    assert all("Execution Time" in (tmp_path / name).read_text() for name in written)
