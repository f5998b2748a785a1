"""The broadcast: job notices and one-to-one notifications through one delivery ledger.

- `campaigns`: publish_job / pause / resume / cancel / report (staff actions, CLI, console)
- `ledger`: claiming batches, recording outcomes, recovering dead workers, TEMPLATESENDJOBFINISH
- `sender`: channel choice, rate, retries (one `Broadcaster.run` per task)
- `tasks` / `celery_app`: the Celery worker; `hooks`: queueing work after the caller commits
"""
