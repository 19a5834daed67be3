"""dialplan.bids and the bids strategy of dialplan.routing, against a real local HTTP bid server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, load_located
from dialplan.bids import BidAnswer, Buyer, HttpBidder, parse_answer, read_buyers
from dialplan.caps import Caps, Usage
from dialplan.facts import CallFacts, Region
from dialplan.routing import DestinationLimits, Plan, RoutingSettings, Target, plan_route
from storage.usage import Counts, UsageSnapshot

NOW = datetime(2026, 3, 14, 15, 30, tzinfo=timezone.utc)
CALLER = "13125551234"


@dataclass(frozen=True)
class FixedSchedule:
    open: bool

    def is_open(self, when: datetime) -> bool:
        return self.open


SCHEDULES: dict[str, Any] = {"business": FixedSchedule(True), "night": FixedSchedule(False)}
ROUTING = RoutingSettings(destinations=(Target("house"),), strategy="bids")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_facts(**changes: Any) -> CallFacts:
    facts = CallFacts(call_id="c1", campaign="spring", dialed_number="18005550100", caller_number=CALLER,
                      arrived_at=NOW, region=Region("US", "IL", "312", "Chicago, IL"), quality=70,
                      session={"source": "google", "keyword": "plumber"}, variables={"department": "sales"},
                      earlier_calls=(NOW,), tags={"vip"})
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def reply(body: Any, status: int = 200) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body if isinstance(body, str) else json.dumps(body), status=status,
                            content_type="application/json")
    return handle


@dataclass
class BidServer:
    base: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    received: list[tuple[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, name: str) -> str:
        return f"{self.base}/bid/{name}"

    def slow(self) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            await self.release.wait()
            return web.json_response({"bid": 99})
        return handle


@pytest.fixture
async def server() -> AsyncIterator[BidServer]:
    holder: list[BidServer] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        srv = holder[0]
        name = request.match_info["name"]
        srv.received.append((name, json.loads(await request.read())))
        return await srv.handlers[name](request)

    app = web.Application()
    app.router.add_post("/bid/{name}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    holder.append(BidServer(f"http://{host}:{port}"))
    yield holder[0]
    holder[0].release.set()
    await runner.cleanup()


@pytest.fixture
async def bidder() -> AsyncIterator[HttpBidder]:
    async with aiohttp.ClientSession() as session:
        yield HttpBidder(session)


def buyer(name: str, **changes: Any) -> Buyer:
    return replace(Buyer(name=name, destinations=(f"{name}-line",)), **changes)


async def plan(buyers: list[Buyer], bidder: Any = None, *, facts: CallFacts | None = None,
               usage: Usage | None = None, limits: dict[str, DestinationLimits] | None = None) -> Plan:
    return await plan_route(ROUTING, facts or make_facts(), destinations=limits or {},
                            buyers={b.name: b for b in buyers}, schedules=SCHEDULES, usage=usage or Usage(),
                            bidder=bidder, now=NOW)


def winners(p: Plan) -> list[tuple[str | None, float | None, tuple[str, ...]]]:
    return [(a.buyer, a.bid, a.destinations) for a in p.attempts]


def bids_of(p: Plan, name: str) -> dict[str, dict[str, Any]]:
    return {b["source"]: b for b in p.bids if b["buyer"] == name}


def skipped(p: Plan) -> dict[str, str]:
    return {s["name"]: s["why"] for s in p.skipped if s["kind"] == "buyer"}


async def test_highest_eligible_bid_wins_and_the_rest_follow(server: BidServer, bidder: HttpBidder) -> None:
    server.handlers["acme"] = reply({"bid": 15, "destination": "acme-line"})
    server.handlers["gamma"] = reply({"bid": 11})
    buyers = [buyer("acme", bid=10, url=server.url("acme")), buyer("beta", bid=12),
              buyer("gamma", url=server.url("gamma"))]
    p = await plan(buyers, bidder)
    assert winners(p) == [("acme", 15, ("acme-line",)), ("beta", 12, ("beta-line",)),
                          ("gamma", 11, ("gamma-line",)), (None, None, ("house",))]
    assert p.attempts[0].reason == "bid #1: acme 15.00 (realtime) -> acme-line"
    assert p.attempts[-1].reason == "unsold: priority #1: house"
    acme = bids_of(p, "acme")
    assert acme["realtime"]["eligible"] and acme["realtime"]["amount"] == 15
    assert acme["static"] == {"buyer": "acme", "amount": 10, "source": "static", "eligible": False,
                              "reason": "replaced by the real-time answer"}
    assert bids_of(p, "beta")["static"]["eligible"]
    assert bids_of(p, "gamma")["realtime"]["destination"] == "gamma-line"  # the default destination
    record = p.record()
    assert record["route_strategy"] == "bids" and len(record["bids"]) == 4


async def test_a_higher_static_bid_beats_a_lower_realtime_one(server: BidServer, bidder: HttpBidder) -> None:
    server.handlers["acme"] = reply({"bid": 9.5})
    p = await plan([buyer("acme", bid=20, url=server.url("acme")), buyer("beta", bid=12)], bidder)
    assert winners(p)[:2] == [("beta", 12, ("beta-line",)), ("acme", 9.5, ("acme-line",))]


async def test_ties_go_to_the_higher_static_bid_then_the_name() -> None:
    class Fixed:
        async def request(self, b: Buyer, payload: dict[str, Any]) -> BidAnswer:
            return BidAnswer(amount=12)

    buyers = [buyer("acme", bid=5, url="http://127.0.0.1:9/"), buyer("zulu", bid=12), buyer("beta", bid=12)]
    p = await plan(buyers, Fixed())
    assert [w[0] for w in winners(p)] == ["beta", "zulu", "acme", None]


@pytest.mark.parametrize("changes, facts, reason", [
    ({"campaigns": ("autumn",)}, {}, "does not buy campaign spring"),
    ({"min_quality": 80}, {}, "below min quality: 70 < 80"),
    ({"min_quality": 40}, {"quality": None}, "below min quality: unknown < 40"),
    ({"regions": ("TX", "214")}, {}, "out of region: caller US IL 312, wanted TX, 214"),
    ({"regions": ("US",)}, {"region": None}, "out of region: caller region unknown, wanted US"),
    ({"hours": "night"}, {}, "closed (hours night)"),
])
async def test_ineligible_buyers_are_not_asked(server: BidServer, bidder: HttpBidder, changes: dict[str, Any],
                                               facts: dict[str, Any], reason: str) -> None:
    server.handlers["acme"] = reply({"bid": 50})
    p = await plan([buyer("acme", bid=30, url=server.url("acme"), **changes), buyer("beta", bid=1)], bidder,
                   facts=make_facts(**facts))
    assert server.received == []
    assert winners(p)[0][0] == "beta"
    assert skipped(p) == {"acme": reason}
    assert bids_of(p, "acme") == {
        "static": {"buyer": "acme", "amount": 30, "source": "static", "eligible": False, "reason": reason},
        "realtime": {"buyer": "acme", "amount": None, "source": "realtime", "eligible": False, "reason": reason}}


async def test_budget_and_caps_from_the_stored_counts(server: BidServer, bidder: HttpBidder) -> None:
    async def run(fn: Any) -> UsageSnapshot:
        return UsageSnapshot(buyers={"spent": Counts(day=9, month=9, spent_day=200, spent_month=200),
                                     "almost": Counts(day=1, month=1, spent_day=195, spent_month=195),
                                     "daily": Counts(hour=1, day=10, month=10)})

    server.handlers["almost"] = reply({"bid": 7.5})
    buyers = [buyer("spent", bid=5, caps=Caps(budget_day=200)),
              buyer("almost", bid=5, url=server.url("almost"), caps=Caps(budget_day=200)),
              buyer("daily", bid=5, caps=Caps(day=10)), buyer("ok", bid=1)]
    p = await plan(buyers, bidder, usage=Usage(run))
    assert skipped(p)["spent"] == "budget day 200.00 of 200.00"
    assert skipped(p)["daily"] == "cap day 10/10"
    # the real-time bid would overrun the budget: it is refused and the static bid, which fits, stands
    assert bids_of(p, "almost")["realtime"]["reason"] == "budget day 195.00 + 7.50 of 200.00"
    assert winners(p)[:2] == [("almost", 5, ("almost-line",)), ("ok", 1, ("ok-line",))]


async def test_a_buyer_at_its_concurrent_cap_is_skipped(server: BidServer, bidder: HttpBidder) -> None:
    usage = Usage()
    usage.start("buyer", "acme")
    server.handlers["acme"] = reply({"bid": 50})
    p = await plan([buyer("acme", url=server.url("acme"), caps=Caps(concurrent=1)), buyer("beta", bid=1)],
                   bidder, usage=usage)
    assert server.received == []
    assert skipped(p) == {"acme": "cap concurrent 1/1"}


async def test_calls_started_while_bidding_count() -> None:
    """The live counts are read again after the wait for bids: a buyer that took a call meanwhile is full."""
    usage = Usage()

    class Busy:
        async def request(self, b: Buyer, payload: dict[str, Any]) -> BidAnswer:
            usage.start("buyer", "acme")  # another call's leg to acme started while this one waited
            return BidAnswer(amount=50)

    p = await plan([buyer("acme", url="http://127.0.0.1:9/", caps=Caps(concurrent=1)), buyer("beta", bid=1)],
                   Busy(), usage=usage)
    assert winners(p)[0][0] == "beta"
    assert skipped(p) == {"acme": "cap concurrent 1/1"}


async def test_a_slow_bidder_times_out_and_is_recorded(server: BidServer, bidder: HttpBidder) -> None:
    server.handlers["slow"] = server.slow()
    server.handlers["slower"] = server.slow()
    server.handlers["fast"] = reply({"bid": 3})
    buyers = [buyer("slow", bid=4, url=server.url("slow"), timeout=0.3),
              buyer("slower", url=server.url("slower"), timeout=0.3), buyer("fast", url=server.url("fast"))]
    started = time.monotonic()
    p = await plan(buyers, bidder)
    elapsed = time.monotonic() - started
    assert elapsed < 0.6, elapsed  # asked in parallel, each cut at its own timeout
    slow = bids_of(p, "slow")
    assert slow["realtime"]["reason"] == "no answer within 0.3 s" and not slow["realtime"]["eligible"]
    assert 0.25 <= slow["realtime"]["seconds"] < 0.6
    assert slow["static"]["eligible"]  # the static bid stands
    assert bids_of(p, "slower")["realtime"]["reason"] == "no answer within 0.3 s"
    assert skipped(p) == {"slower": "no usable bid"}
    assert winners(p)[:2] == [("slow", 4, ("slow-line",)), ("fast", 3, ("fast-line",))]


async def test_a_bidder_that_ignores_its_timeout_is_cut_off() -> None:
    class Stuck:
        async def request(self, b: Buyer, payload: dict[str, Any]) -> BidAnswer:
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    started = time.monotonic()
    p = await plan([buyer("acme", bid=2, url="http://127.0.0.1:9/", timeout=0.1)], Stuck())
    assert time.monotonic() - started < 0.5
    assert bids_of(p, "acme")["realtime"]["reason"] == "no answer within 0.1 s"
    assert winners(p)[0] == ("acme", 2, ("acme-line",))


async def test_a_broken_bidder_costs_only_its_bid() -> None:
    class Broken:
        async def request(self, b: Buyer, payload: dict[str, Any]) -> BidAnswer:
            raise RuntimeError("boom")

    p = await plan([buyer("acme", url="http://127.0.0.1:9/"), buyer("beta", bid=1)], Broken())
    assert bids_of(p, "acme")["realtime"]["reason"] == "bidder failed: RuntimeError"
    assert winners(p)[0][0] == "beta"
    p = await plan([buyer("acme", bid=3, url="http://127.0.0.1:9/")], None)
    assert bids_of(p, "acme")["realtime"]["reason"] == "real-time bids are not enabled"
    assert winners(p)[0] == ("acme", 3, ("acme-line",))


@pytest.mark.parametrize("handler, reason", [
    (reply("this is not json"), "answer is not JSON"),
    (reply("[1, 2]"), "answer is not a JSON object"),
    (reply({"bid": "lots"}), "bid 'lots' is not an amount from 0 to 100000"),
    (reply({"bid": -3}), "bid -3 is not an amount from 0 to 100000"),
    (reply({"bid": 5, "destination": 7}), "destination is not a string"),
    (reply({"error": "down"}, status=500), "HTTP 500"),
    (reply("x" * 70_000), "answer larger than 65536 bytes"),
])
async def test_garbage_answers_are_recorded_and_the_static_bid_stands(
        server: BidServer, bidder: HttpBidder, handler: Handler, reason: str) -> None:
    server.handlers["acme"] = handler
    p = await plan([buyer("acme", bid=6, url=server.url("acme"))], bidder)
    assert bids_of(p, "acme")["realtime"]["reason"] == reason
    assert not bids_of(p, "acme")["realtime"]["eligible"]
    assert winners(p)[0] == ("acme", 6, ("acme-line",))


async def test_an_answer_arriving_in_pieces(server: BidServer, bidder: HttpBidder) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for piece in (b'{"bid": 1', b'7.5, "destin', b'ation": "acme-line"}'):
            await response.write(piece)
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    server.handlers["acme"] = trickle
    p = await plan([buyer("acme", url=server.url("acme"))], bidder)
    assert winners(p)[0] == ("acme", 17.5, ("acme-line",))


async def test_an_unreachable_bidder(bidder: HttpBidder) -> None:
    p = await plan([buyer("acme", bid=6, url="http://127.0.0.1:9/bid", timeout=2)], bidder)
    assert bids_of(p, "acme")["realtime"]["reason"] == "request failed: ClientConnectorError"
    assert winners(p)[0] == ("acme", 6, ("acme-line",))


async def test_a_destination_outside_the_buyers_list_is_rejected(server: BidServer, bidder: HttpBidder) -> None:
    server.handlers["acme"] = reply({"bid": 40, "destination": "beta-line"})
    buyers = [buyer("acme", destinations=("acme-line", "acme-backup"), bid=5, url=server.url("acme")),
              buyer("beta", bid=1)]
    p = await plan(buyers, bidder)
    realtime = bids_of(p, "acme")["realtime"]
    assert realtime["reason"] == "rejected: 'beta-line' is not one of acme-line, acme-backup"
    assert realtime["destination"] == "beta-line" and not realtime["eligible"]
    assert winners(p)[0] == ("acme", 5, ("acme-line",))  # never the destination it asked for
    assert all(a.destinations != ("beta-line",) or a.buyer == "beta" for a in p.attempts)


async def test_a_closed_destination_of_the_buyer(server: BidServer, bidder: HttpBidder) -> None:
    server.handlers["acme"] = reply({"bid": 40, "destination": "acme-line"})
    limits = {"acme-line": DestinationLimits(hours="night")}
    p = await plan([buyer("acme", destinations=("acme-line", "acme-backup"), bid=5, url=server.url("acme"))],
                   bidder, limits=limits)
    assert bids_of(p, "acme")["realtime"]["reason"] == "rejected: acme-line closed (hours night)"
    assert winners(p)[0] == ("acme", 5, ("acme-backup",))
    limits["acme-backup"] = DestinationLimits(caps=Caps(concurrent=0))
    p = await plan([buyer("acme", destinations=("acme-line", "acme-backup"), bid=5, url=server.url("acme"))],
                   bidder, limits=limits)
    assert skipped(p)["acme"] == ("none of its destinations can take the call (acme-line: closed (hours night); "
                                  "acme-backup: cap concurrent 0/0)")


@pytest.mark.parametrize("answer", [{"bid": 0}, {}, {"bid": None}, ""])
async def test_a_decline_takes_the_buyer_out(server: BidServer, bidder: HttpBidder, answer: Any) -> None:
    server.handlers["acme"] = reply(answer, status=204) if answer == "" else reply(answer)
    p = await plan([buyer("acme", bid=25, url=server.url("acme")), buyer("beta", bid=1)], bidder)
    acme = bids_of(p, "acme")
    assert acme["realtime"]["reason"] == "declined"
    assert acme["static"]["reason"] == "replaced by the real-time answer" and not acme["static"]["eligible"]
    assert skipped(p) == {"acme": "no usable bid"}
    assert [w[0] for w in winners(p)] == ["beta", None]


async def test_the_payload_never_carries_the_caller(server: BidServer, bidder: HttpBidder) -> None:
    server.handlers["acme"] = reply({"bid": 1})
    server.handlers["beta"] = reply({"bid": 2})
    facts = make_facts()
    await plan([buyer("acme", url=server.url("acme")), buyer("beta", url=server.url("beta"))], bidder, facts=facts)
    assert sorted(name for name, _ in server.received) == ["acme", "beta"]
    for name, payload in server.received:
        assert payload == {**json.loads(json.dumps(facts.public())), "buyer": name}
        text = json.dumps(payload)
        assert CALLER not in text and CALLER[1:] not in text and "5551234" not in text
        assert not {"caller_number", "caller_name", "earlier_calls", "session"} & set(payload)


async def test_no_eligible_buyer_is_reported_and_the_call_goes_on() -> None:
    p = await plan([buyer("acme", bid=9, campaigns=("autumn",))])
    assert winners(p) == [(None, None, ("house",))]
    assert "bids: no eligible buyer" in p.record()["route_reasons"]
    p = await plan([])
    assert p.notes == ("bids: no eligible buyer",)


def test_parse_answer() -> None:
    assert parse_answer(b'{"bid": 12.5, "destination": "acme-line"}') == BidAnswer(12.5, "acme-line")
    assert parse_answer(b'{"bid": 3}') == BidAnswer(3.0)
    assert parse_answer(b'{"bid": 0}') == BidAnswer()
    assert parse_answer(b'{"bid": true}').error is not None
    assert parse_answer(b'{"bid": 1e400}').error is not None  # inf
    assert parse_answer(b"\xff\xfe").error == "answer is not JSON"


# --- configuration --------------------------------------------------------------------------------------

def buyers_of(tmp_path: Path, text: str) -> dict[str, Buyer]:
    path = tmp_path / "ringpool.yaml"
    path.write_text(text)
    top = _Section(path, load_located(path), "", 1)
    return read_buyers(top.items("buyers"), destinations=("acme-line", "acme-backup", "house"),
                       schedules=("business",), campaigns=("spring-search", "autumn"))


def test_read_buyers(tmp_path: Path) -> None:
    buyers = buyers_of(tmp_path, """\
buyers:
  - name: acme
    destinations: [acme-line, acme-backup]
    campaigns: [spring-search]
    regions: [IL]
    hours: business
    min_quality: 40
    bid: 12.50
    url: http://127.0.0.1:9100/bid
    timeout: 0.8
    caps: {concurrent: 2, hour: 10, day: 50, month: 500, budget_day: 200, budget_month: 3000}
  - name: beta
    destinations: house
    url: https://bids.example.com/ringpool?key=1
""")
    assert buyers["acme"] == Buyer(name="acme", destinations=("acme-line", "acme-backup"),
                                   campaigns=("spring-search",), regions=("IL",), hours="business", min_quality=40,
                                   bid=12.5, url="http://127.0.0.1:9100/bid", timeout=0.8,
                                   caps=Caps(2, 10, 50, 500, 200.0, 3000.0))
    assert buyers["beta"] == Buyer(name="beta", destinations=("house",),
                                   url="https://bids.example.com/ringpool?key=1")


@pytest.mark.parametrize("entry, line, key, message", [
    ("destinations: [nowhere]\n    bid: 1", 3, "buyers[0].destinations", "no destination named 'nowhere'"),
    ("destinations: []\n    bid: 1", 3, "buyers[0].destinations", "at least one destination"),
    ("destinations: [house]\n    campaigns: [winter]\n    bid: 1", 4, "buyers[0].campaigns",
     "no campaign named 'winter'"),
    ("destinations: [house]\n    hours: lunch\n    bid: 1", 4, "buyers[0].hours", "no schedule named 'lunch'"),
    ("destinations: [house]\n    regions: [Mars]\n    bid: 1", 4, "buyers[0].regions", "'Mars' is not a region"),
    ("destinations: [house]", 2, "buyers[0].bid", "static bid, a url"),
    ("destinations: [house]\n    bid: 0", 4, "buyers[0].bid", "never wins"),
    ("destinations: [house]\n    bid: cheap", 4, "buyers[0].bid", "expected an amount"),
    ("destinations: [house]\n    url: ftp://x/", 4, "buyers[0].url", "http(s)://"),
    ("destinations: [house]\n    bid: 1\n    timeout: 30", 5, "buyers[0].timeout", "seconds from 0.05 to 10"),
    ("destinations: [house]\n    bid: 1\n    min_quality: 101", 5, "buyers[0].min_quality", "out of range"),
    ("destinations: [house]\n    bid: 1\n    caps: {concurrent: -1}", 5, "buyers[0].caps.concurrent",
     "out of range"),
    ("destinations: [house]\n    bid: 1\n    price: 3", 5, "buyers[0].price", "unknown key"),
])
def test_read_buyers_errors(tmp_path: Path, entry: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        buyers_of(tmp_path, f"buyers:\n  - name: acme\n    {entry}\n")
    assert (err.value.line, err.value.key) == (line, key), err.value
    assert message in err.value.message


def test_read_buyers_duplicate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        buyers_of(tmp_path, "buyers:\n  - {name: acme, destinations: [house], bid: 1}\n"
                            "  - {name: acme, destinations: [house], bid: 2}\n")
    assert (err.value.line, err.value.key) == (3, "buyers[1]")
    assert "duplicate name 'acme'" in err.value.message
