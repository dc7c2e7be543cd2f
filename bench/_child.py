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


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, not ru_maxrss, which Linux carries over exec from the parent.

    (The benchmark's parent grows while it writes the 1%-changed workbook; ru_maxrss would report that.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


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
            "peak_rss_mb": peak_rss_mb(),
            "error": error,
        }
    )
)
