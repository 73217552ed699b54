"""The errors only the web raises: a request it cannot read, a Host it does not answer, a
missing token, a body not declared as JSON, another site's page, a path or method no route
has, a bug, one event stream too many (for the process or for one client), a dependency
/readyz cannot reach, a werkzeug status passed through; and what the HTTP server answers
before the app runs (a request line or headers too large, an app that does not answer the
front). They are `TestRunError`s like the service's (worker/core/errors.py): a stable `code`
and data, rendered by the one renderer, whose table gives every error its HTTP status
(web/errors.py)."""

from __future__ import annotations

from worker.core.errors import TestRunError


class InvalidRequest(TestRunError):
    """The path, query, headers or body do not fit the route's models (web/schemas/)."""

    code = "invalid_request"


class HostNotAllowed(TestRunError):
    """The Host header is not in TRUSTED_HOSTS (a DNS-rebinding page, or a wrong name)."""

    code = "host_not_allowed"


class Unauthorized(TestRunError):
    code = "unauthorized"


class UnsupportedMediaType(TestRunError):
    """A body not declared as JSON (`text/plain`, a form): what a browser posts cross-site
    without a preflight (web/bodies.py)."""

    code = "unsupported_media_type"


class CrossSiteRequest(TestRunError):
    """A browser says the request comes from another site (Sec-Fetch-Site) whose origin is not
    in CORS_ORIGINS: a page the user merely visited, posting with no body (web/bodies.py)."""

    code = "cross_site_request"


class NoSuchRoute(TestRunError):
    """No route matches the path."""

    code = "not_found"


class MethodNotAllowed(TestRunError):
    code = "method_not_allowed"


class InternalError(TestRunError):
    """A bug: the client is told nothing more; the server log has the traceback."""

    code = "internal_error"


class TooManyStreams(TestRunError):
    """This web process already serves TEST_RUN_MAX_STREAMS event streams (web/events.py)."""

    code = "too_many_streams"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"this server already streams {limit} test runs' events; try again "
                         "shortly, or read the run instead" if limit else
                         "this server process streams no events (one request at a time: a "
                         "stream would hold it); try again shortly, or read the run instead",
                         retry_after=retry_after)
        self.retry_after = retry_after


class TooManyClientStreams(TestRunError):
    """This caller already holds TEST_RUN_MAX_STREAMS_PER_CLIENT event streams on this web
    process (web/events.py): one client must not take every stream from the others."""

    code = "too_many_client_streams"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"you already watch {limit} test runs' events here; close one, or "
                         "try again shortly", retry_after=retry_after)
        self.retry_after = retry_after


class UriTooLong(TestRunError):
    """The request line is longer than the HTTP server reads (web/before_app.py)."""

    code = "uri_too_long"


class HeadersTooLarge(TestRunError):
    """A header field, or all of them, are larger than the HTTP server reads, or there are
    more of them than it counts (web/before_app.py)."""

    code = "headers_too_large"


class AppUnavailable(TestRunError):
    """The front (nginx) got no answer from the app behind it: it is starting, restarting or
    down (web/front.py)."""

    code = "app_unavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class NotReady(TestRunError):
    """/readyz: Redis or the broker does not answer (`checks` says which; web/health.py)."""

    code = "not_ready"

    def __init__(self, down: list[str], checks: dict[str, str],
                 workers_online: int | None) -> None:
        super().__init__(f"unreachable: {', '.join(down)}", checks=checks,
                         workers_online=workers_online)


class HttpError(TestRunError):
    """werkzeug raised a status we never produce on purpose: it is passed through as it is, so
    this error alone brings its own status (no route declares it)."""

    code = "http_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
