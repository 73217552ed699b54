"""`make bench`: every figure a ratio against a baseline measured in the same run.

run.py orchestrates and prints the table; http.py drives gunicorn with wrk; apps.py holds the
baselines (bare Celery, celery-singleton, celery_once) as WSGI apps; inprocess.py measures one
admission's parts, the 503 path, flatness and Redis bytes; e2e.py runs echo through a real
prefork worker. Nothing here imports tests.support: the bench runs without the test suite.
"""
