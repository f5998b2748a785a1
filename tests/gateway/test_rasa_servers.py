"""Several Rasa servers behind one `RASA_URL`: balanced per message, a dead one passed over, no turn run twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateway.conftest import Pusher, free_port
from tests.gateway.rasa_double import RasaDouble
from webhook.gateway.rasa_client import Balancer, RasaClient, RasaUnavailable, split_urls


@pytest.fixture
def second_rasa() -> Iterator[RasaDouble]:
    double = RasaDouble().start()
    yield double
    double.stop()


def test_rasa_url_may_name_several_servers() -> None:
    assert split_urls("http://a:5005/, http://b:5006") == ["http://a:5005", "http://b:5006"]
    assert split_urls("http://a:5005") == ["http://a:5005"]
    with pytest.raises(ValueError):
        RasaClient(" , ")


def test_messages_in_flight_go_to_the_idle_server(rasa: RasaDouble, second_rasa: RasaDouble) -> None:
    rasa.delay = second_rasa.delay = 0.5
    client = RasaClient(f"{rasa.url},{second_rasa.url}")
    answers: list[str] = []

    def ask(openid: str) -> None:
        answers.append(client.send(openid, f"{openid} 你好", timeout=5).messages[0]["text"])

    threads = [threading.Thread(target=ask, args=(f"o{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [f"收到：o{i} 你好" for i in range(4)]
    assert (len(rasa.calls), len(second_rasa.calls)) == (2, 2)


def test_one_at_a_time_the_servers_take_turns(rasa: RasaDouble, second_rasa: RasaDouble) -> None:
    client = RasaClient(f"{rasa.url},{second_rasa.url}")
    for i in range(6):
        client.send("oTurns", f"第{i}句", timeout=5)
    assert rasa.messages() == ["第0句", "第2句", "第4句"]
    assert second_rasa.messages() == ["第1句", "第3句", "第5句"]


def test_a_server_that_refuses_is_passed_over_and_the_user_still_gets_the_answer(
    make_app: Any, rasa: RasaDouble
) -> None:
    push = Pusher(make_app(rasa_url=f"http://127.0.0.1:{free_port()},{rasa.url}").test_client())
    for i in range(3):
        assert push.reply(push.text("oHalf", f"第{i}句"))["Content"] == f"收到：第{i}句"
    assert rasa.messages() == ["第0句", "第1句", "第2句"]


def test_a_message_that_may_have_reached_a_server_is_not_sent_to_another(
    rasa: RasaDouble, second_rasa: RasaDouble
) -> None:
    rasa.delay = 1.0  # the first server in turn reads the message and answers too late
    client = RasaClient(f"{rasa.url},{second_rasa.url}")
    with pytest.raises(RasaUnavailable) as raised:
        client.send("oSlow", "我的优待证办好了吗", timeout=0.3)
    assert raised.value.reason == "timeout"
    assert rasa.messages() == ["我的优待证办好了吗"] and second_rasa.calls == []


def test_all_servers_down_is_rasa_unavailable() -> None:
    client = RasaClient(f"http://127.0.0.1:{free_port()},http://127.0.0.1:{free_port()}")
    with pytest.raises(RasaUnavailable) as raised:
        client.send("oDown", "你好", timeout=1)
    assert "no Rasa server" in raised.value.reason


def test_a_refused_server_is_tried_last_until_its_cooldown_ends() -> None:
    now = [100.0]
    balancer = Balancer(2, cooldown=5.0, clock=lambda: now[0])
    balancer.refused(0)
    assert [balancer.candidates()[0] for _ in range(4)] == [1, 1, 1, 1]
    now[0] += 5.1
    assert sorted(balancer.candidates()[0] for _ in range(4)) == [0, 0, 1, 1]


def test_readiness_holds_while_one_of_the_rasa_servers_is_up(make_app: Any, rasa: RasaDouble) -> None:
    ready = make_app(rasa_url=f"http://127.0.0.1:{free_port()},{rasa.url}").test_client().get("/readyz")
    assert ready.get_json()["checks"]["rasa"] is True
    down = make_app(rasa_url=f"http://127.0.0.1:{free_port()}").test_client().get("/readyz")
    assert down.status_code == 503 and down.get_json()["checks"]["rasa"] is False
