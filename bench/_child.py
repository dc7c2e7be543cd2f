"""Run one management command in this process and print its wall time and peak RSS as JSON (bench helper)."""

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prodplan.settings")

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

started = time.perf_counter()
error = None
try:
    call_command(*sys.argv[1:])
except SystemExit as exc:
    error = f"exit {exc.code}"
except Exception as exc:  # noqa: BLE001 - reported in the JSON
    error = f"{type(exc).__name__}: {exc}"
print(
    "BENCH_RESULT "
    + json.dumps(
        {
            "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "error": error,
        }
    )
)
