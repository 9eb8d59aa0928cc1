"""Celery end to end against a certus cluster, through kombu's Redis
transport and Celery's Redis result backend: tasks sent through the first
node, run by a worker whose broker and backend are the second node, their
results awaited through the third (the worker publishes each result on a
channel: pub/sub is cluster-wide). Usage: celery_check.py host:port
host:port host:port (REDIS_PASSWORD)."""
import os
import subprocess
import sys
import time

TASKS = 25


def url(endpoint):
    host, port = endpoint.rsplit(":", 1)
    password = os.environ.get("REDIS_PASSWORD")
    return f"redis://:{password}@{host}:{port}/0" if password else f"redis://{host}:{port}/0"


def main(endpoints):
    here = os.path.dirname(os.path.abspath(__file__))
    sender, worker_node, waiter = (url(e) for e in endpoints[:3])
    os.environ["CELERY_BROKER"], os.environ["CELERY_BACKEND"] = sender, waiter
    sys.path.insert(0, here)
    import celery_tasks

    env = dict(os.environ, PYTHONPATH=here, CELERY_BROKER=worker_node, CELERY_BACKEND=worker_node)
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    worker = subprocess.Popen(
        [celery, "-A", "celery_tasks", "worker", "--pool=solo", "--concurrency=1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        env=env, stdout=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        results = [celery_tasks.add.delay(i, i) for i in range(TASKS)]
        for i, result in enumerate(results):
            value = result.get(timeout=120)
            if value != 2 * i:
                raise SystemExit(f"celery: task {i} returned {value!r}")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    print(f"celery: {TASKS} tasks sent through one node, run by a worker on another, "
          f"results awaited on a third, in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main(sys.argv[1:])
