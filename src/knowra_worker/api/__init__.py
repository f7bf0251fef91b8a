"""The HTTP API: thin routes over the TaskStore and the Celery client."""
