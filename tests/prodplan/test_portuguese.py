"""Portuguese first means all of it: every page, partial and admin screen in pt-PT, and a complete catalogue."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

HX = {"HTTP_HX_REQUEST": "true"}
PT = {"HTTP_ACCEPT_LANGUAGE": "pt-pt"}

# English words that have no business on a pt-PT screen. Product names are data ("Marathon Racer") and are
# left out of the check by stripping them first; the words below do not occur in the demo's product names.
ENGLISH_WORDS = (
    "the", "of", "and", "with", "from", "orders", "order", "phase", "phases", "days", "lead time", "rule",
    "basis", "coverage", "observed", "theoretical", "imputed", "succeeded", "failed", "pending", "running",
    "kayak", "canoe", "other", "unknown", "median", "interval", "residuals", "validation", "week", "weeks",
    "select", "change", "rejected", "row", "issue", "issues", "defect", "risk", "remaining", "finish",
    "queue", "stations", "late", "at risk", "done", "waiting", "stalled", "throughput", "none", "true", "false",
    "real_stock", "not_supported_by_data", "allow-shrink", "add", "delete", "save", "history", "filter", "search",
)
_WORD_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in ENGLISH_WORDS) + r")\b", re.IGNORECASE)
# A lower-case code with an underscore (real_stock, orphan_order_phase, end_before_start) is a code, not a word.
_CODE_RE = re.compile(r"\b[a-z]+_[a-z_]+\b")
# Technical names a steward needs verbatim: workbook sheet and column names, management commands, file names.
_VERBATIM_RE = re.compile(r"\b[A-Z][A-Za-z]+_[A-Za-z_]+\b|\S*manage\.py \S+|\S+\.xlsx|\S+\.py|\b[A-Z][a-z]+[A-Z]\w+\b")


def _visible_text(body: str) -> list[str]:
    body = re.sub(r"<script.*?</script>|<style.*?</style>|<code.*?</code>", " ", body, flags=re.S)
    body = re.sub(r"<(input|select|option)\b[^>]*>", " ", body)
    text = re.sub(r"<[^>]+>", "\n", body)
    return [html.unescape(line.strip()) for line in text.split("\n") if line.strip()]


def _chart_words(body: str) -> list[str]:
    """The words a chart draws (its data is JSON in a script tag): dataset labels, axis and category labels, titles."""
    import json

    words: list[str] = []

    def walk(node, key=None):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and key in ("label", "labels", "text", "title"):
            words.append(node)

    for raw in re.findall(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', body, flags=re.S):
        walk(json.loads(raw))
    return words


def _titles(body: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'\b(?:title|aria-label|placeholder)="([^"]+)"', body)]


def _product_names() -> set[str]:
    """Catalogue names are the factory's data (product and phase names), not the product's words."""
    from orders.models import Phase, Product

    names = set(Product.objects.values_list("name", flat=True)) | set(Phase.objects.values_list("name", flat=True))
    return {name for name in names if name}


def _english_in(lines: list[str], products: set[str]) -> list[str]:
    found = []
    for line in lines:
        cleaned = line
        for name in products:
            if name in cleaned:
                cleaned = cleaned.replace(name, " ")
        cleaned = _VERBATIM_RE.sub(" ", cleaned)
        # An all-capitals short word is an abbreviation ("OF": ordem de fabrico), not English.
        words = [m.group(0) for m in _WORD_RE.finditer(cleaned) if not (m.group(0).isupper() and len(m.group(0)) <= 3)]
        words += _CODE_RE.findall(cleaned)
        if words:
            found.append(f"{words[0]!r} in {line[:140]!r}")
    return found


def _crawl(client, start: list[str]) -> dict[str, list[str]]:
    """Every page in start and every partial they load (hx-get), in pt-PT: url -> English found."""
    products = _product_names()
    seen: set[str] = set()
    queue = list(start)
    problems: dict[str, list[str]] = {}
    while queue:
        url = queue.pop(0)
        if url in seen or "export" in url or "after=" in url:
            continue
        seen.add(url)
        response = client.get(url, **PT, **(HX if "widget=" in url else {}))
        expected = 400 if "2025-02-30" in url else 200
        assert response.status_code == expected, (url, response.status_code)
        body = response.content.decode()
        queue.extend(html.unescape(u) for u in re.findall(r'hx-get="([^"]+)"', body))
        found = _english_in(_visible_text(body) + _titles(body) + _chart_words(body), products)
        if found:
            problems[url] = found
    assert len(seen) >= len(start)
    return problems


def _user(name: str, *, group: str, staff: bool) -> User:
    from prodplan.roles import ensure_role_groups

    ensure_role_groups()
    user = User.objects.create_user(name, password=f"{name}-pw-2025", is_staff=staff)
    user.groups.add(Group.objects.get(name=group))
    return user


def _pages(ingested) -> list[str]:
    from orders.models import ManufacturingOrder

    open_order = ManufacturingOrder.objects.filter(finished_at__isnull=True).order_by("id").values_list("id", flat=True).first()
    done_order = ManufacturingOrder.objects.filter(finished_at__isnull=False).order_by("id").values_list("id", flat=True).first()
    return ["/", "/orders/", "/quality/", "/inventory/", "/whatif/", "/models/", "/ingestion/",
            f"/ingestion/runs/{ingested['run_id']}/", f"/orders/{open_order}/", f"/orders/{done_order}/",
            "/orders/?state=stalled&state=in_progress", "/orders/?as_of=2025-02-30", "/orders/?sort=-age",
            "/quality/errors/", "/whatif/runs/"]


def _registry() -> None:
    """A registry like a trained one (mlops.services.train_models stores these shapes), so the models page shows its
    metrics, split sizes, promotion evidence and the active model's feature importance."""
    from mlops.models import ModelVersion

    ModelVersion.objects.create(name="leadtime", version=1, algorithm="baseline", data_version=1,
                                metrics={"validation": {"n": 403, "mae": 3.5, "mape": 0.41, "p90_abs_error": 7.2}},
                                rows={"train": 1800, "validation": 403, "test": 390, "censor_cutoff": "2025-10-01T00:00:00"},
                                promotion_evidence={"verdict": "baseline", "role": "fallback", "baseline_kind": "product_median"})
    comparison = {"reference": "leadtime:v1:baseline", "reference_kind": "baseline", "reference_id": 1,
                  "reference_detail": "product_median",
                  "validation": {"candidate": 1.6695, "reference": 3.5, "margin": 1.83, "low": 1.2, "high": 2.4,
                                 "excludes_zero": True, "n": 403, "resamples": 1000, "seed": 0},
                  "test": {"candidate": 1.9, "reference": 3.4, "margin": 1.5, "not_worse": True, "tolerance": 0.0}}
    ModelVersion.objects.create(
        name="leadtime", version=2, algorithm="hgb", data_version=1, active=True,
        metrics={"validation": {"n": 403, "mae": 1.6695, "mape": 0.21, "p90_abs_error": 3.9},
                 "baseline_validation": {"n": 403, "mae": 3.5}, "test": {"n": 390, "mae": 1.9}},
        rows={"train": 1800, "validation": 403, "test": 390},
        importance=[{"feature": "prod_hist_lt", "importance": 0.4}, {"feature": "open_orders", "importance": 0.1}],
        promotion_evidence={"verdict": "promoted", "passed": True, "metric": "mae", "comparisons": [comparison],
                            "checks": [{"code": "validation_margin", "reference": "leadtime:v1:baseline", "ok": True}]})
    ModelVersion.objects.create(
        name="risk", version=1, algorithm="mlp", data_version=1,
        metrics={"validation": {"n": 403, "roc_auc": 0.61, "brier": 0.2, "base_rate": 0.8}},
        promotion_evidence={"verdict": "refused", "passed": False, "metric": "roc_auc", "comparisons": [],
                            "checks": [{"code": "brier_validation", "ok": False}]})


def test_supervisor_pages_have_no_english_in_portuguese(client, db, ingested):
    from prodplan.roles import SUPERVISORS

    client.force_login(_user("sup-pt", group=SUPERVISORS, staff=False))
    problems = _crawl(client, _pages(ingested))
    assert not problems, "English on pt-PT screens:\n" + "\n".join(f"{u}: {p}" for u, ps in problems.items() for p in ps)


def test_models_page_with_a_registry_has_no_english_in_portuguese(client, db, ingested):
    """Metrics as words with units, targets, algorithms, versions and promotion evidence in words (no dict dumps)."""
    from prodplan.roles import SUPERVISORS

    _registry()
    client.force_login(_user("sup-pt-models", group=SUPERVISORS, staff=False))
    problems = _crawl(client, ["/models/"])
    assert not problems, "English on the pt-PT models page:\n" + "\n".join(f"{u}: {p}" for u, ps in problems.items() for p in ps)
    body = client.get("/models/", **PT).content.decode()
    assert "mae=" not in body and "n=403" not in body and "1,67 dias" in body and "Prazo de fabrico v2" in body


def test_steward_admin_has_no_english_in_portuguese(client, db, ingested):
    from ingestion.models import DataQualityIssue, Reject
    from prodplan.roles import DATA_STEWARDS

    client.force_login(_user("steward-pt", group=DATA_STEWARDS, staff=True))
    start = ["/admin/", "/admin/ingestion/reject/", "/admin/ingestion/dataqualityissue/", "/admin/ingestion/ingestionrun/"]
    reject = Reject.objects.order_by("id").first()
    issue = DataQualityIssue.objects.order_by("id").first()
    if reject is not None:
        start.append(f"/admin/ingestion/reject/{reject.pk}/change/")
    if issue is not None:
        start.append(f"/admin/ingestion/dataqualityissue/{issue.pk}/change/")
    assert reject is not None, "the demo workbook has rejects by design"
    problems = _crawl(client, start)
    assert not problems, "English on pt-PT admin screens:\n" + "\n".join(f"{u}: {p}" for u, ps in problems.items() for p in ps)


def test_catalogue_is_complete():
    """Every message of the pt-PT catalogue is translated and none is fuzzy; the compiled file is current."""
    polib = pytest.importorskip("polib", reason="polib is in the test extras")
    po_path = Path(settings.BASE_DIR) / "locale" / "pt_PT" / "LC_MESSAGES" / "django.po"
    catalogue = polib.pofile(str(po_path))
    empty = [e.msgid for e in catalogue if not e.obsolete and not e.translated() and "fuzzy" not in e.flags]
    fuzzy = [e.msgid for e in catalogue if "fuzzy" in e.flags and not e.obsolete]
    assert not empty, f"{len(empty)} messages without a translation, e.g. {empty[:5]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy messages, e.g. {fuzzy[:5]}"
    mo_path = po_path.with_suffix(".mo")
    compiled = polib.mofile(str(mo_path))
    missing = {e.msgid for e in catalogue if e.translated()} - {e.msgid for e in compiled}
    assert not missing, f"django.mo is older than django.po: {sorted(missing)[:5]} (run msgfmt)"


def test_english_mode_stays_english(client, db, ingested):
    """The catalogue holds the Portuguese; the source strings are English, so English mode reads English."""
    from prodplan.roles import DATA_STEWARDS

    client.force_login(_user("steward-en", group=DATA_STEWARDS, staff=True))
    orders = client.get("/orders/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "K1 kayak" in orders and "Caiaque" not in orders
    admin_index = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Rejected rows" in admin_index and "Data-quality issues" in admin_index and "Linhas rejeitadas" not in admin_index
    portuguese = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode()
    assert "Linhas rejeitadas" in portuguese and "Problemas de qualidade dos dados" in portuguese
