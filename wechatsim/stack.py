"""Start the whole local stack as real processes: simulator, action server, Rasa, webhook, worker.

Used by the integration tests and the benchmarks, so both exercise exactly what `make run` runs.
Every part listens on a free loopback port and logs to a file in `workdir`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check` until it is true; fail with the process's log tail when it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# As deploy/gunicorn.conf.py: each push holds a thread for up to the reply budget while Rasa thinks, so
# threads must outnumber the users writing at once, or pushes queue unseen and miss WeChat's 5 s.
WEBHOOK_THREADS = 32


@dataclass
class Part:
    name: str
    process: subprocess.Popen
    port: int | None
    log: Path


@dataclass
class LocalStack:
    """The processes of one Zhanyou deployment on this machine."""

    workdir: Path
    model: str
    database_url: str
    redis_url: str | None = None
    rasa_workers: int = 1  # Sanic workers in each Rasa process
    rasa_processes: int = 1  # separate Rasa servers, each on its own port, balanced by the gateway
    webhook_workers: int = 2
    reply_budget_seconds: float = 4.0
    extra_env: dict[str, str] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("simulator", "actions", *self.rasa_names, "webhook"):
            self.ports[name] = free_port()

    # -- addresses ---------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def rasa_names(self) -> list[str]:
        """The parts that are Rasa servers: "rasa", then "rasa-2", "rasa-3"…"""
        return ["rasa"] + [f"rasa-{n}" for n in range(2, self.rasa_processes + 1)]

    @property
    def rasa_urls(self) -> list[str]:
        return [self.url(name) for name in self.rasa_names]

    @property
    def webhook_url(self) -> str:
        return self.url("webhook") + "/wechat"

    @property
    def simulator_url(self) -> str:
        return self.url("simulator") + "/"

    def env(self) -> dict[str, str]:
        """The environment every part shares, as `make run` would set it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
        env.update(
            DATABASE_URL=self.database_url,
            RASA_URL=",".join(self.rasa_urls),
            ACTION_SERVER_URL=self.url("actions") + "/webhook",
            WECHAT_API_BASE=self.simulator_url,
            REPLY_BUDGET_SECONDS=str(self.reply_budget_seconds),
            PYTHONUNBUFFERED="1",
        )
        env.setdefault("DATA_KEY", "zhanyou-local-stack-data-key")
        env.setdefault("SECRET_KEY", "zhanyou-local-stack-secret")
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        else:
            env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        return env

    # -- starting ----------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Part:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as handle:  # the child keeps its own descriptor
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env or self.env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        part = Part(name, process, self.ports.get(name), log)
        self.parts[name] = part
        return part

    def start_simulator(self) -> None:
        part = self._spawn(
            "simulator",
            [str(VENV_BIN / "python"), "-m", "wechatsim.server", "--port", str(self.ports["simulator"])],
        )
        wait_until(
            lambda: requests.get(self.url("simulator") + "/sim/health", timeout=1).ok,
            30,
            "simulator",
            part.process,
            part.log,
        )

    def start_actions(self) -> None:
        part = self._spawn(
            "actions",
            [
                str(VENV_BIN / "python"),
                "-m",
                "rasa_sdk",
                "--actions",
                "actions",
                "--port",
                str(self.ports["actions"]),
            ],
        )
        wait_until(
            lambda: requests.get(self.url("actions") + "/health", timeout=1).ok,
            60,
            "action server",
            part.process,
            part.log,
        )

    def _rasa_endpoints(self) -> Path:
        lines = ["action_endpoint:", f'  url: "{self.url("actions")}/webhook"']
        if self.redis_url:
            # Several Sanic workers serve one conversation safely only with a shared lock and tracker store.
            from urllib.parse import urlparse

            parsed = urlparse(self.redis_url)
            db = (parsed.path or "/0").lstrip("/") or "0"
            for store in ("tracker_store", "lock_store"):
                lines += [
                    f"{store}:",
                    "  type: redis",
                    f"  url: {parsed.hostname}",
                    f"  port: {parsed.port or 6379}",
                    f"  db: {db}",
                ]
                if store == "tracker_store":
                    lines.append("  key_prefix: zhanyou")
        path = self.workdir / "endpoints.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_rasa(self, name: str | None = None) -> None:
        """Start Rasa server `name`, or every one not running; they load their models side by side."""
        names = [name] if name else [n for n in self.rasa_names if n not in self.parts]
        env = self.env()
        env["SANIC_WORKERS"] = str(self.rasa_workers)
        # One Rasa process per core: TensorFlow's own thread pools only fight the other processes for the
        # cores (measured in benchmarks/conversation: ~20 % less Rasa CPU per message at 50 users).
        env.setdefault("TF_INTRA_OP_PARALLELISM_THREADS", "1")
        env.setdefault("TF_INTER_OP_PARALLELISM_THREADS", "1")
        started = [
            self._spawn(
                rasa,
                [
                    str(RASA_BIN),
                    "run",
                    "--enable-api",
                    "--model",
                    self.model,
                    "--port",
                    str(self.ports[rasa]),
                    "--endpoints",
                    str(self._rasa_endpoints()),
                    "--credentials",
                    str(ROOT / "bot" / "credentials.yml"),
                ],
                env,
            )
            for rasa in names
        ]
        for part in started:
            url = self.url(part.name)

            def loaded(url: str = url) -> bool:
                reply = requests.get(url + "/status", timeout=2)
                return reply.ok and bool(reply.json().get("model_file"))

            wait_until(loaded, 240, f"Rasa server {part.name}", part.process, part.log)

    def start_webhook(self) -> None:
        part = self._spawn(
            "webhook",
            [
                str(VENV_BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.ports['webhook']}",
                "--workers",
                str(self.webhook_workers),
                "--threads",
                str(WEBHOOK_THREADS),
                "--worker-class",
                "gthread",
                "--timeout",
                "30",
                "webhook:create_app()",
            ],
        )
        wait_until(
            lambda: requests.get(self.url("webhook") + "/healthz", timeout=1).ok,
            60,
            "webhook",
            part.process,
            part.log,
        )

    def start_worker(self) -> None:
        argv = [
            str(VENV_BIN / "celery"),
            "-A",
            "bureau.broadcast.celery_app",
            "worker",
            "--beat",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "INFO",
        ]
        self._spawn("worker", argv)

    def prepare_database(self, seed: bool = True) -> None:
        """Migrate (and seed) the stack's database with the project's own commands."""
        flask = [str(VENV_BIN / "flask"), "--app", "webhook"]
        subprocess.run([*flask, "db-upgrade"], cwd=ROOT, env=self.env(), check=True, capture_output=True)
        if seed:
            subprocess.run([*flask, "seed"], cwd=ROOT, env=self.env(), check=True, capture_output=True)

    def start(self, worker: bool = False) -> LocalStack:
        """Everything the conversation path needs, in dependency order."""
        self.prepare_database()
        self.start_simulator()
        self.start_actions()
        self.start_rasa()
        self.start_webhook()
        if worker:
            self.start_worker()
        return self

    # -- stopping ----------------------------------------------------------------------------
    def stop_part(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        part = self.parts.pop(name, None)
        if part is None or part.process.poll() is not None:
            return
        try:
            os.killpg(part.process.pid, sig)
            part.process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(part.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            part.process.wait(timeout=5)

    def stop(self) -> None:
        for name in list(reversed(list(self.parts))):
            self.stop_part(name)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def current_model() -> str:
    """The trained model for this checkout (trains it when config or data changed)."""
    model = os.environ.get("MODEL")
    if model and Path(model).exists():
        return model
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "train.sh")], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise RuntimeError("training the Rasa model failed")
    return str(ROOT / result.stdout.strip())
