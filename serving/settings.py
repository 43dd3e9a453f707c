"""Service settings: one object, from environment variables (prefix ``YUEDU_``) or a ``.env`` file.

Secrets (the token signing key, the pseudonym key, staff passwords) come from the environment, never
from the repository. Without ``YUEDU_SECRET_KEY`` a random key is generated per process (tokens then
only live as long as the process; fine for the demo and tests, not for production).
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YUEDU_", env_file=".env", extra="ignore")

    data_dir: Path = Field(REPO_ROOT / ".demo" / "data", description="Validated data directory (Parquet tables).")
    db_url: str = Field(
        f"sqlite:///{REPO_ROOT / '.demo' / 'yuedu.db'}", description="SQLAlchemy URL of the transactional store."
    )
    model_dir: Path | None = Field(None, description="Model directory to serve (overrides the registry alias).")
    model_alias: str | None = Field(None, description="MLflow registry alias to serve, e.g. 'production'.")
    model_poll_s: float = Field(30.0, description="How often to check whether the alias moved, seconds (0 = never).")
    policy_file: Path | None = Field(None, description="Programme policy TOML (default: the built-in defaults).")
    secret_key: str = Field(default_factory=lambda: secrets.token_hex(32), description="Token signing key.")
    token_ttl_s: int = Field(8 * 3600, description="Lifetime of issued tokens, seconds.")
    staff_users: str = Field(
        "", description="Staff logins 'user:password[:role]' separated by ','; role staff (default) or admin."
    )
    live_sync_s: float = Field(
        0.2,
        description="How often a worker applies the other workers' live events and reload requests, seconds "
        "(0 = never; the delay within which every worker of `yuedu serve --workers N` has the same view).",
    )
    reservation_sweep_s: float = Field(
        60.0, description="How often expired counter reservations are released, seconds (0 = never)."
    )
    notice_sweep_s: float = Field(
        0.0, description="How often queued reader notices are sent through the policy's channel, seconds (0 = never)."
    )
    cookie_secure: bool | None = Field(
        None,
        description="Mark the staff cookie Secure: true, false, or unset = when the request came over https "
        "(behind a TLS proxy run uvicorn with --proxy-headers so the scheme is seen).",
    )
    allowed_origins: str = Field(
        "", description="Extra origins (comma-separated, e.g. https://lib.example) allowed to post staff forms."
    )
    login_max_failures: int = Field(5, ge=1, description="Wrong passwords before a login is locked.")
    login_lockout_s: float = Field(60.0, gt=0, description="First lockout, seconds; doubles each time (max 1 h).")
    today: str | None = Field(None, description="Override 'today' (ISO date) for booklist windows; default: now.")
    queue_aware: bool = Field(
        False,
        description="Queue-aware lists (recsys.rerank.QUEUE_AWARE): borrowable within 21 days, wait penalty, "
        "exposure prices, reasons that say when (docs/promotion.md §6-7).",
    )
    exposure_prices: Path | None = Field(
        None,
        description="Exposure prices JSON (recsys.exposure.save_prices) loaded with each model; "
        "default: exposure_prices.json in the data directory when present.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
