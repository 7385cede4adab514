"""gunicorn settings for RareGen behind nginx (``gunicorn -c deploy/gunicorn.conf.py
'app:create_app()'``; ``scripts/run`` uses it too, with ``-b`` on a loopback port).

nginx (``deploy/nginx/``) hands gunicorn whole requests, so gunicorn's threads never wait on
a slow client; these limits are for whatever reaches gunicorn otherwise. Run it with
``RAREGEN_TRUSTED_PROXIES=1`` so the client address is taken from nginx's X-Forwarded-For.
"""

import os

# production: a socket only nginx can reach (scripts/run passes -b 127.0.0.1:<port>); web
# machines behind an nginx elsewhere bind their private address instead, with gunicorn's
# GUNICORN_CMD_ARGS=--bind=<address>:8000 (which overrides this file), docs/DEPLOY.md
bind = ["unix:/run/raregen/gunicorn.sock"]
# gthread: a request that waits (on the database, on a client read) holds a thread, not a process
worker_class = "gthread"
# WEB_CONCURRENCY: gunicorn's own variable for the worker count
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 4
# a worker silent for this long is killed and replaced; stopping gives requests this long
timeout = 30
graceful_timeout = 10
# idle keep-alive connections from nginx's upstream pool
keepalive = 30
# wider than nginx's large_client_header_buffers (4 kB a line or header, 16 kB in all), so a
# request nginx lets through is never refused here with gunicorn's own page
limit_request_line = 8190
limit_request_field_size = 8190
limit_request_fields = 8192
# X-Forwarded-Proto from nginx on this machine only
forwarded_allow_ips = "127.0.0.1,::1"
# with JSON logs (RAREGEN_LOG_FORMAT=json) the app writes one line per request itself, with
# its request id (raregen.logs); gunicorn's own access lines would only repeat it as text
accesslog = None if os.environ.get("RAREGEN_LOG_FORMAT", "").strip().lower() == "json" else "-"
