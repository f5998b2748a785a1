"""gunicorn settings for the webhook in production (threads: a WeChat push mostly waits on Rasa)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEBHOOK_WORKERS", "2"))
threads = int(os.environ.get("WEBHOOK_THREADS", "8"))
worker_class = "gthread"
# WeChat waits 5 s; nothing legitimate takes 30.
timeout = 30
graceful_timeout = 20
accesslog = "-"
# Bodies are capped at 64 KB by the app; keep header limits at gunicorn's defaults.


def child_exit(server, worker):
    """Drop a dead worker's metric files so /metrics does not count it forever."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
