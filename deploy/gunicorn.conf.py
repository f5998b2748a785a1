"""gunicorn settings for the webhook in production (threads: a WeChat push mostly waits on Rasa)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEBHOOK_WORKERS", "2"))
# Each push holds a thread for up to the reply budget (4 s) while Rasa thinks: threads must outnumber the
# users writing at once, or pushes wait in the accept queue unseen and miss WeChat's 5 s (measured in
# benchmarks/conversation: 2 x 8 threads at 50 users sent 87 of 400 answers after 4.5 s).
threads = int(os.environ.get("WEBHOOK_THREADS", "32"))
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
