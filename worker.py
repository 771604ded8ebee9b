"""The background worker's entry: `huey_consumer worker.huey --workers 2`.

It builds the Flask app that the jobs of services/jobs.py run in, from the same
environment as the web server (DATABASE_URL, …), so that services never import
app.py. The web server only queues jobs and never imports this module.
"""
from app import create_app
from services import jobs
from services.jobs import huey

jobs.build_app_with(create_app)


@huey.on_startup()
def _build_app():
    """Build the app as the worker starts (about 1.5 s), not on its first job: the
    first upload after a restart would wait for it."""
    jobs.worker_app()
