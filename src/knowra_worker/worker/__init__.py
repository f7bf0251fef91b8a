"""The Celery side: the app built from settings, and the task that runs the pipeline."""
