"""`celery -A knowra_worker.celery_app worker|flower` finds the Celery app here."""

from knowra_worker.worker.celery_app import app

__all__ = ["app"]
