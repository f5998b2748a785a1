"""The real stack for end-to-end tests: trained model, Rasa server, action server, webhook, simulator.

Started once per test session (Rasa takes ~20 s to load the model). Each test talks as its own WeChat
user (a fresh OpenID), so conversations never interfere.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import sessionmaker

from bureau import db
from wechatsim.client import WeChatClientSim
from wechatsim.stack import LocalStack, current_model

pytestmark = pytest.mark.integration

_openids = itertools.count(1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    database_url = f"sqlite:///{workdir / 'zhanyou.db'}"
    local = LocalStack(
        workdir=workdir,
        model=current_model(),
        database_url=database_url,
        extra_env={"DATA_KEY": "integration-data-key"},
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def stack_db(stack: LocalStack) -> sessionmaker:
    """A session factory on the stack's own database, to check what was stored."""
    os.environ["DATA_KEY"] = "integration-data-key"
    from bureau.settings import get_settings

    get_settings.cache_clear()
    return db.get_session_factory(stack.database_url)


@pytest.fixture
def wechat(stack: LocalStack) -> WeChatClientSim:
    """A WeChat server pushing to the stack's webhook."""
    env = stack.env()
    return WeChatClientSim(
        stack.webhook_url,
        token=env.get("WECHAT_TOKEN", "zhanyou-dev-token"),
        app_id=env.get("WECHAT_APP_ID", "wxzhanyoudev0001"),
        sim_url=stack.simulator_url,
    )


@pytest.fixture
def openid(stack: LocalStack) -> str:
    """A new follower of the account, known to the simulator."""
    value = f"o-it-{next(_openids)}-{uuid.uuid4().hex[:10]}"
    requests.post(stack.simulator_url + "sim/followers", json={"openid": value}, timeout=5).raise_for_status()
    return value
