"""The tasks scripts/celery_check.py sends (importable by the worker). The
broker and the result backend are the Redis URLs in CELERY_BROKER and
CELERY_BACKEND."""
import os

from celery import Celery

app = Celery("celery_tasks", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BACKEND"])
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    result_expires=600,
)


@app.task
def add(a, b):
    return a + b
