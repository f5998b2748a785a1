"""Configuration from the environment (and an optional `.env`), with defaults for a local run."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_DATA_KEY = "zhanyou-dev-data-key-not-for-production"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Every knob of the system; see the configuration table in README.md."""

    database_url: str
    redis_url: str | None
    rasa_url: str
    action_server_url: str
    wechat_token: str
    wechat_app_id: str
    wechat_app_secret: str
    wechat_aes_key: str | None
    wechat_api_base: str
    secret_key: str
    data_key: str
    port: int
    production: bool
    reply_budget_seconds: float = 4.0
    rate_limit_per_minute: int = 30
    service_phone: str = "0593-8352233"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment; in production refuse to start without real secrets."""
        load_dotenv(PROJECT_ROOT / ".env", override=False)
        production = _env("ZHANYOU_ENV", "development") == "production"
        secret_key = _env("SECRET_KEY")
        data_key = _env("DATA_KEY")
        if production and (not secret_key or not data_key):
            raise RuntimeError(
                "生产环境必须设置 SECRET_KEY 和 DATA_KEY (production needs SECRET_KEY and DATA_KEY)"
            )
        return cls(
            database_url=_env("DATABASE_URL", f"sqlite:///{PROJECT_ROOT / 'instance' / 'zhanyou.db'}") or "",
            redis_url=_env("REDIS_URL"),
            rasa_url=(_env("RASA_URL", "http://127.0.0.1:5005") or "").rstrip("/"),
            action_server_url=_env("ACTION_SERVER_URL", "http://127.0.0.1:5055/webhook") or "",
            wechat_token=_env("WECHAT_TOKEN", "zhanyou-dev-token") or "",
            wechat_app_id=_env("WECHAT_APP_ID", "wxzhanyoudev0001") or "",
            wechat_app_secret=_env("WECHAT_APP_SECRET", "zhanyou-dev-secret") or "",
            wechat_aes_key=_env("WECHAT_AES_KEY"),
            wechat_api_base=_env("WECHAT_API_BASE", "https://api.weixin.qq.com/") or "",
            secret_key=secret_key or secrets.token_hex(32),
            data_key=data_key or DEV_DATA_KEY,
            port=int(_env("PORT", "5000") or 5000),
            production=production,
            reply_budget_seconds=float(_env("REPLY_BUDGET_SECONDS", "4.0") or 4.0),
            rate_limit_per_minute=int(_env("RATE_LIMIT_PER_MINUTE", "30") or 30),
            service_phone=_env("SERVICE_CENTER_PHONE", "0593-8352233") or "",
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return Settings.from_env()
