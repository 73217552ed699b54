"""What runs only inside a Celery worker process: the task, its signals, the heartbeat,
revokes, the run's log."""
