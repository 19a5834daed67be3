"""Ringpool configuration: one YAML file, validated at start into frozen dataclasses.

Every error names the file, the line and the dotted key, so an operator can fix a typo without guessing.
Relative paths in the file are resolved against the file's own folder, not the working directory.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from ari_app.yaml_located import ConfigError, LocatedList, LocatedMap, load_located

if TYPE_CHECKING:
    from dialplan.bids import Buyer
    from dialplan.caps import DestinationLimits
    from dialplan.hours import Schedule
    from dialplan.payouts import PayoutRules
    from dialplan.quality import QualitySettings
    from dialplan.routing import RoutingSettings
    from ivr.flow import Flow
    from ari_app.outbox.model import Sink
    from ari_app.screening.model import ScreeningSettings
    from ari_app.tracking.model import Pool

T = TypeVar("T")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SOUND_RE = re.compile(r"^[A-Za-z0-9_/.-]{1,200}$")


def normalise_number(raw: str) -> str:
    """Digits only: tracking numbers and dialed numbers compare in this form (``+1 (555) 123`` -> ``1555123``)."""
    return "".join(ch for ch in raw if ch.isdigit())


@dataclass(frozen=True)
class AriSettings:
    url: str
    username: str
    password: str | None  # None: generated into the state folder (bundled Asterisk only)
    app: str


@dataclass(frozen=True)
class AsteriskSettings:
    bundled: bool
    sip_bind: str
    sip_port: int
    http_port: int
    rtp_start: int
    rtp_end: int
    # Where Ringpool writes its dynamic PJSIP sections (test accounts, bans) and reads Asterisk's security
    # log. Bundled: inside the run folder. External Asterisk: set them (and #include the file in pjsip.conf).
    accounts_file: Path | None = None
    security_log: Path | None = None


@dataclass(frozen=True)
class AdminSettings:
    bind: str
    port: int
    token: str | None  # None: generated on first run into the state folder


@dataclass(frozen=True)
class Trunk:
    """A carrier allowed to send calls (matched by source address) and optionally to carry outbound calls."""

    name: str
    match: tuple[str, ...]
    contact: str | None  # sip:host[:port] for outbound calls, None for inbound-only trunks

    @property
    def endpoint(self) -> str:
        return f"trunk-{self.name}"


@dataclass(frozen=True)
class Destination:
    """Where calls may be sent: a SIP device (host/port) or a number through an outbound trunk."""

    name: str
    kind: str  # "sip" or "trunk"
    host: str | None = None
    port: int = 5060
    user: str | None = None
    trunk: str | None = None
    number: str | None = None
    amd: bool = False  # listen when it answers, before bridging: an answering machine counts as no answer
    account: str | None = None  # a registered test account (kind "sip"), dialled as PJSIP/<username>
    limits: "DestinationLimits | None" = None  # hours, regions and caps; None: always, anyone, unlimited

    @property
    def endpoint(self) -> str:
        return self.account if self.account else f"dest-{self.name}"


@dataclass(frozen=True)
class Fallback:
    """What happens when the destination is busy, does not answer or fails."""

    destination: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class DetectionSettings:
    """Listening to the caller: off unless a campaign asks for it (it costs a snoop, a port and CPU)."""

    listen: bool = False
    early_media: int = 0  # seconds to listen on early media (183) before answering; 0 = listen after answer
    expect_speech: int = 0  # seconds after answer within which the caller should speak; 0 = no timer
    speech: bool = False  # transcribe the caller and spot keywords (needs speech.model)


@dataclass(frozen=True)
class SpeechSettings:
    """Vosk speech recognition: a model folder the operator provides (never downloaded) and keyword rules."""

    model: Path | None = None
    keywords: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSettings:
    """Callers wait here when no destination can take the call (seed 000: ordered by quality)."""

    max_wait: int = 300  # seconds, then the fallback
    announce_every: int = 30  # seconds between position announcements; 0: never
    music: str | None = None  # Asterisk music-on-hold class; None: "default" (Ringpool's own with the bundled one)
    fallback: str = "voicemail"  # voicemail, hangup, or callback (the caller is called back when a place frees)


QUEUE_FALLBACKS = ("voicemail", "hangup", "callback")


@dataclass(frozen=True)
class RecordingSettings:
    enabled: bool = False
    disclosure: str | None = "This call may be recorded."  # spoken to both sides before recording starts
    min_seconds: int = 5  # shorter recordings are deleted (seed 000: minimum call recording length)


@dataclass(frozen=True)
class ClickToCallSettings:
    """Calls the visitor first, then the business (seed 000: click-to-call, and the queue's callback). Only
    numbers starting with ``prefixes`` are ever dialled, through ``trunk``, a few times an hour at most: the
    API must not become a way to place calls anywhere (toll fraud)."""

    trunk: str
    prefixes: tuple[str, ...] = ("1",)  # digits with the country code: "1" is North America
    caller_id: str | None = None  # what the visitor sees; None: the campaign's first tracking number
    ring_timeout: int = 30
    per_number_hour: int = 3  # calls to one visitor number per hour


@dataclass(frozen=True)
class Campaign:
    name: str
    title: str
    destination: str
    greeting: str | None
    ring_timeout: int
    fallback: Fallback
    detection: DetectionSettings = DetectionSettings()
    screening: "ScreeningSettings | None" = None  # None: the global screening settings
    flow: str | None = None  # the IVR flow callers go through (config flows folder)
    routing: "RoutingSettings | None" = None  # None: the destination, then the fallback destination
    quality: "QualitySettings | None" = None  # None: the default quality factors
    payout: "PayoutRules | None" = None  # None: no revenue or payout is computed
    queue: QueueSettings | None = None  # None: no queue; a caller nobody can take gets the fallback
    recording: RecordingSettings = RecordingSettings()
    flow_routes: Mapping[str, "RoutingSettings"] = field(default_factory=dict)  # the flow's route nodes, resolved
    click_to_call: ClickToCallSettings | None = None  # None: the click-to-call API refuses this campaign


@dataclass(frozen=True)
class TrackingNumber:
    number: str
    campaign: str
    pool: str | None = None
    role: str = "static"  # static (a campaign's own), pool (leased to visitors), overflow, extension


# --- test accounts (softphones that call in like a PSTN caller) ----------------------------------------------

ACCOUNT_USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
# Names Asterisk or carriers use on their own: a From user "anonymous" from a trunk must never be taken for an
# account, and trunk-/dest- are the endpoint names Ringpool renders for trunks and destinations.
RESERVED_USERNAMES = frozenset({"anonymous", "restricted", "unknown", "unavailable", "private", "asterisk",
                                "ringpool", "transport-udp", "global", "system", "guest", "admin", "root"})
RESERVED_PREFIXES = ("trunk-", "dest-", "ringpool-")
ACCOUNT_CALLER_RE = re.compile(r"^(\+?[0-9]{1,20}|anonymous|restricted|unavailable)$", re.I)
ACCOUNT_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f\";\\<>]{0,64}$")
# The headers a test account can present, and the channel variables the dialplan copies them into (the same
# ones the trunk path fills from the INVITE).
ACCOUNT_HEADERS = {"p-asserted-identity": ("P-Asserted-Identity", "RINGPOOL_PAI"),
                   "privacy": ("Privacy", "RINGPOOL_PRIVACY"),
                   "diversion": ("Diversion", "RINGPOOL_DIVERSION"),
                   "p-charge-info": ("P-Charge-Info", "RINGPOOL_CHARGE")}
ACCOUNT_HEADER_VALUE_RE = re.compile(r"^[\x20-\x7e]{1,256}$")
MIN_PASSWORD = 12


def account_username_problem(username: Any) -> str | None:
    """Why a test-account user name is not allowed, or None. Names are endpoint names in pjsip.conf."""
    if not isinstance(username, str) or not ACCOUNT_USERNAME_RE.match(username):
        return ("2-32 characters: lower-case letters, digits, '.', '_' and '-', starting with a letter "
                "(not a number: trunk callers' numbers must never match an account)")
    if username in RESERVED_USERNAMES or username.startswith(RESERVED_PREFIXES):
        return f"{username!r} is reserved (also: names starting with {', '.join(RESERVED_PREFIXES)})"
    return None


def account_password_problem(password: Any) -> str | None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= 128:
        return f"{MIN_PASSWORD} to 128 characters"
    if any(not (0x21 <= ord(ch) <= 0x7e) for ch in password):
        return "printable ASCII without spaces"
    return None


def account_headers_problem(headers: Any) -> tuple[str | None, dict[str, str]]:
    """Validate {header name: value}; returns (problem, headers by canonical name)."""
    if not isinstance(headers, dict):
        return "expected a mapping of header name to value", {}
    result: dict[str, str] = {}
    for name, value in headers.items():
        known = ACCOUNT_HEADERS.get(str(name).lower())
        if known is None:
            return (f"{name!r} is not supported (one of {', '.join(h for h, _v in ACCOUNT_HEADERS.values())})",
                    {})
        if not isinstance(value, str) or not ACCOUNT_HEADER_VALUE_RE.match(value):
            return f"{name}: 1-256 printable ASCII characters", {}
        result[known[0]] = value
    return None, result


@dataclass(frozen=True)
class TestAccount:
    """A softphone login that calls in like a PSTN caller, presenting a configured caller id and headers."""

    __test__ = False  # not a pytest class

    username: str
    caller_number: str
    caller_name: str = ""
    password: str | None = None  # None: generated into the state folder's secrets
    headers: dict[str, str] = field(default_factory=dict)  # canonical header name -> value


@dataclass(frozen=True)
class SecuritySettings:
    """fail2ban-style counting of Asterisk's authentication failures per source address."""

    max_failures: int = 5
    window: int = 60  # seconds
    ban_seconds: int = 600
    never_ban: tuple[str, ...] = ()  # addresses/CIDRs never banned (trunk addresses are never banned either)


TEST_SERVICE_ECHO = "*43"
TEST_SERVICE_READBACK = "*65"


@dataclass(frozen=True)
class Settings:
    path: Path
    state_dir: Path
    database: Path
    ari: AriSettings
    asterisk: AsteriskSettings
    admin: AdminSettings
    trunks: dict[str, Trunk]
    destinations: dict[str, Destination]
    campaigns: dict[str, Campaign]
    numbers: dict[str, TrackingNumber] = field(default_factory=dict)
    speech: SpeechSettings = SpeechSettings()
    test_accounts: dict[str, TestAccount] = field(default_factory=dict)
    security: SecuritySettings = SecuritySettings()
    pools: dict[str, "Pool"] = field(default_factory=dict)
    inventory: tuple[str, ...] = ()  # numbers in no campaign, from which pools grow
    webhooks: dict[str, "Sink"] = field(default_factory=dict)  # where call events are sent (the outbox)
    screening: "ScreeningSettings | None" = None  # the defaults; None: built-in defaults
    schedules: dict[str, "Schedule"] = field(default_factory=dict)  # named business hours
    flows: dict[str, "Flow"] = field(default_factory=dict)  # IVR flows by name
    buyers: dict[str, "Buyer"] = field(default_factory=dict)  # who bids for calls (routing strategy "bids")

    def screening_for(self, campaign: Campaign | None) -> "ScreeningSettings":
        from ari_app.screening.model import ScreeningSettings

        if campaign is not None and campaign.screening is not None:
            return campaign.screening
        return self.screening or ScreeningSettings()


class _Section:
    """Typed reads from one mapping of the file; each failed read raises a located ConfigError."""

    def __init__(self, file: Path, data: Any, key: str, line: int) -> None:
        if not isinstance(data, LocatedMap):
            raise ConfigError(file, line, key, f"expected a mapping, got {_kind(data)}")
        self.file, self.data, self.key = file, data, key
        self.used: set[str] = set()

    def _path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def line_of(self, name: str) -> int:
        return self.data.key_lines.get(name, self.data.line)

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.line_of(name), self._path(name), message)

    def raw(self, name: str, default: Any = ..., *, required: bool = False) -> Any:
        self.used.add(name)
        if name not in self.data or self.data[name] is None:
            if required or default is ...:
                raise ConfigError(self.file, self.data.line, self._path(name), "is required")
            return default
        return self.data[name]

    def string(self, name: str, default: Any = ..., *, pattern: re.Pattern[str] | None = None,
               hint: str = "") -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.error(name, f"expected a string, got {_kind(value)}")
        value = str(value)
        if pattern is not None and not pattern.match(value):
            raise self.error(name, f"invalid value {value!r}{': ' + hint if hint else ''}")
        return value

    def integer(self, name: str, default: Any = ..., *, low: int, high: int) -> Any:
        value = self.raw(name, default)
        if value is default and default is not ...:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected a whole number, got {_kind(value)}")
        if not low <= value <= high:
            raise self.error(name, f"{value} is out of range {low}..{high}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_kind(value)}")
        return value

    def section(self, name: str, *, optional: bool = True) -> "_Section":
        value = self.raw(name, None if optional else ...)
        if value is None:
            empty = LocatedMap()
            empty.line, empty.key_lines = self.line_of(name), {}
            value = empty
        return _Section(self.file, value, self._path(name), self.line_of(name))

    def items(self, name: str) -> list[tuple["_Section", int]]:
        value = self.raw(name, LocatedList())
        if not isinstance(value, LocatedList):
            raise self.error(name, f"expected a list, got {_kind(value)}")
        lines = getattr(value, "item_lines", [])
        return [
            (_Section(Path(getattr(item, "file", None) or self.file), item, f"{self._path(name)}[{i}]",
                      lines[i] if i < len(lines) else value.line),
             lines[i] if i < len(lines) else value.line)
            for i, item in enumerate(value)
        ]

    def string_list(self, name: str) -> list[str]:
        value = self.raw(name, LocatedList())
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            raise self.error(name, "expected a list of strings")
        return [str(v) for v in value]

    def reject_unknown(self) -> None:
        for name in self.data:
            if name not in self.used:
                raise ConfigError(self.file, self.line_of(name), self._path(str(name)), "unknown key")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", LocatedMap: "a mapping", list: "a list", LocatedList: "a list",
            bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(type(value), type(value).__name__)


def _port(section: _Section, name: str, default: int) -> int:
    return section.integer(name, default, low=1, high=65535)


def _host(section: _Section, name: str, default: Any = ...) -> Any:
    value = section.string(name, default)
    if value is None:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.match(r"^[A-Za-z0-9.-]{1,253}$", value):
            raise section.error(name, f"{value!r} is not an IP address or host name") from None
    return value


def _read_trunk(s: _Section) -> Trunk:
    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    match = s.string_list("match")
    if not match:
        raise s.error("match", "a trunk needs at least one source address (IP or CIDR) to accept calls from")
    for entry in match:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise s.error("match", f"{entry!r} is not an IP address or CIDR range") from None
    contact = s.string("contact", None, pattern=re.compile(r"^sip:[A-Za-z0-9.-]+(:\d{1,5})?$"),
                       hint="expected sip:host or sip:host:port")
    s.reject_unknown()
    return Trunk(name=name, match=tuple(match), contact=contact)


def _read_destination(s: _Section, schedules: Collection[str]) -> Destination:
    from dialplan.routing import read_destination_limits

    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    limits = read_destination_limits(s, schedules)
    amd = s.boolean("amd", False)
    if "account" in s.data:
        account = s.string("account")
        problem = account_username_problem(account)
        if problem:
            raise s.error("account", f"invalid test account name {account!r}: {problem}")
        for other in ("host", "port", "user", "trunk", "number"):
            if other in s.data:
                raise s.error(other, "a destination is either an account, a host or a trunk number")
        s.reject_unknown()
        return Destination(name=name, kind="sip", account=account, amd=amd, limits=limits)
    if "trunk" in s.data:
        trunk = s.string("trunk", pattern=NAME_RE)
        number = s.string("number", pattern=re.compile(r"^\+?[0-9]{3,20}$"), hint="digits, optional leading +")
        s.reject_unknown()
        return Destination(name=name, kind="trunk", trunk=trunk, number=normalise_number(number), amd=amd,
                           limits=limits)
    host = _host(s, "host")
    port = _port(s, "port", 5060)
    user = s.string("user", None, pattern=re.compile(r"^[A-Za-z0-9+._-]{1,64}$"))
    s.reject_unknown()
    return Destination(name=name, kind="sip", host=host, port=port, user=user, amd=amd, limits=limits)


def _read_queue(s: _Section) -> QueueSettings:
    queue = QueueSettings(max_wait=s.integer("max_wait", 300, low=5, high=3600),
                          announce_every=s.integer("announce_every", 30, low=0, high=600),
                          music=s.string("music", None, pattern=re.compile(r"^[A-Za-z0-9_-]{1,40}$")),
                          fallback=s.string("fallback", "voicemail"))
    if queue.fallback not in QUEUE_FALLBACKS:
        raise s.error("fallback", f"{queue.fallback!r}: expected one of {', '.join(QUEUE_FALLBACKS)}")
    s.reject_unknown()
    return queue


def _read_recording(s: _Section) -> RecordingSettings:
    if not s.data:
        return RecordingSettings()
    recording = RecordingSettings(enabled=s.boolean("enabled", True),
                                  disclosure=s.string("disclosure", RecordingSettings.disclosure) or None,
                                  min_seconds=s.integer("min_seconds", 5, low=0, high=3600))
    s.reject_unknown()
    return recording


def _read_click_to_call(s: _Section, trunks: dict[str, Trunk]) -> ClickToCallSettings | None:
    if not s.data:
        return None
    trunk = s.string("trunk", pattern=NAME_RE)
    if trunk not in trunks or trunks[trunk].contact is None:
        raise s.error("trunk", f"{trunk!r}: expected a configured trunk with a contact (calls go out through it)")
    prefixes = tuple(s.string_list("prefixes") or ["1"])
    for prefix in prefixes:
        if not re.fullmatch(r"[0-9]{1,6}", prefix):
            raise s.error("prefixes", f"{prefix!r}: digits, the start of the numbers that may be called")
    caller_id = s.string("caller_id", None, pattern=re.compile(r"^\+?[0-9]{3,20}$"), hint="digits, optional +")
    settings = ClickToCallSettings(trunk=trunk, prefixes=prefixes,
                                   caller_id=normalise_number(caller_id) if caller_id else None,
                                   ring_timeout=s.integer("ring_timeout", 30, low=5, high=120),
                                   per_number_hour=s.integer("per_number_hour", 3, low=1, high=60))
    s.reject_unknown()
    return settings


def _read_fallback(s: _Section) -> Fallback:
    fallback = Fallback(
        destination=s.string("destination", None, pattern=NAME_RE),
        message=s.string("message", None, pattern=SOUND_RE, hint="an Asterisk sound name such as vm-nobodyavail"),
    )
    s.reject_unknown()
    return fallback


def _read_detection(s: _Section) -> DetectionSettings:
    detection = DetectionSettings(listen=s.boolean("listen", False),
                                  early_media=s.integer("early_media", 0, low=0, high=30),
                                  expect_speech=s.integer("expect_speech", 0, low=0, high=60),
                                  speech=s.boolean("speech", False))
    s.reject_unknown()
    if (detection.early_media or detection.expect_speech or detection.speech) and not detection.listen:
        raise s.error("listen", "early_media, expect_speech and speech need listen: true")
    return detection


def _read_speech(s: _Section, base: Path) -> SpeechSettings:
    from detectors.keywords import KeywordSyntaxError, parse

    model = s.string("model", None)
    keywords_section = s.section("keywords")
    keywords: dict[str, str] = {}
    for name in keywords_section.data:
        expression = keywords_section.string(str(name))
        try:
            parse(expression)
        except KeywordSyntaxError as exc:
            raise keywords_section.error(str(name), f"bad keyword expression: {exc}") from None
        keywords[str(name)] = expression
    s.reject_unknown()
    return SpeechSettings(model=(base / model).resolve() if model else None, keywords=keywords)


def _read_test_account(s: _Section) -> TestAccount:
    username = s.string("username")
    problem = account_username_problem(username)
    if problem:
        raise s.error("username", f"invalid user name {username!r}: {problem}")
    password = s.raw("password", None)
    if password is not None:
        if isinstance(password, int) and not isinstance(password, bool):
            password = str(password)
        problem = account_password_problem(password)
        if problem:
            raise s.error("password", f"{problem} (or leave it out: a strong one is generated)")
    caller_number = s.string("caller_number")
    if not ACCOUNT_CALLER_RE.match(caller_number):
        raise s.error("caller_number", f"invalid value {caller_number!r}: digits with an optional leading +, "
                                       "or anonymous/restricted/unavailable")
    caller_name = s.string("caller_name", "")
    if not ACCOUNT_NAME_RE.match(caller_name):
        raise s.error("caller_name", "up to 64 characters, no control characters, quotes, ';', '\\', '<' or '>'")
    raw_headers = s.raw("headers", None)
    headers: dict[str, str] = {}
    if raw_headers is not None:
        problem, headers = account_headers_problem(dict(raw_headers) if isinstance(raw_headers, dict) else raw_headers)
        if problem:
            raise s.error("headers", problem)
    s.reject_unknown()
    return TestAccount(username=username, caller_number=caller_number, caller_name=caller_name, password=password,
                       headers=headers)


def _read_security(s: _Section) -> SecuritySettings:
    never = s.string_list("never_ban")
    for entry in never:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise s.error("never_ban", f"{entry!r} is not an IP address or CIDR range") from None
    security = SecuritySettings(max_failures=s.integer("max_failures", 5, low=1, high=1000),
                                window=s.integer("window", 60, low=1, high=86400),
                                ban_seconds=s.integer("ban_seconds", 600, low=1, high=30 * 86400),
                                never_ban=tuple(never))
    s.reject_unknown()
    return security


def _read_campaign(s: _Section) -> tuple[Campaign, list[tuple[str, int]]]:
    from dialplan.payouts import read_payout
    from dialplan.quality import read_quality

    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    campaign = Campaign(
        name=name,
        title=s.string("title", name),
        destination=s.string("destination", pattern=NAME_RE),
        greeting=s.string("greeting", None, pattern=SOUND_RE, hint="an Asterisk sound name such as hello-world"),
        ring_timeout=s.integer("ring_timeout", 20, low=1, high=300),
        fallback=_read_fallback(s.section("fallback")),
        detection=_read_detection(s.section("detection")),
        flow=s.string("flow", None, pattern=NAME_RE, hint="the name of a flow in the flows folder"),
        quality=read_quality(s.section("quality")) if s.data.get("quality") is not None else None,
        payout=read_payout(s.section("payout")),
        queue=_read_queue(s.section("queue")) if s.data.get("queue") is not None else None,
        recording=_read_recording(s.section("recording")),
    )
    # read after the global sections they refer to (load_settings)
    s.used |= {"screening", "routing", "click_to_call"}
    numbers = []
    raw = s.raw("numbers", LocatedList())
    if not isinstance(raw, list):
        raise s.error("numbers", "expected a list of tracking numbers")
    lines = getattr(raw, "item_lines", [])
    for i, value in enumerate(raw):
        line = lines[i] if i < len(lines) else s.line_of("numbers")
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not re.match(r"^\+?[0-9 ()-]{3,30}$", str(value)):
            raise ConfigError(s.file, line, f"{s.key}.numbers[{i}]", f"{value!r} is not a phone number")
        if len(normalise_number(str(value))) < 3:  # "( -)" passes the pattern but has no digits
            raise ConfigError(s.file, line, f"{s.key}.numbers[{i}]", f"{value!r} has fewer than 3 digits")
        numbers.append((normalise_number(str(value)), line))
    s.reject_unknown()
    return campaign, numbers


def _unique(items: list[tuple[T, int]], file: Path, key: str, name: Callable[[T], str]) -> dict[str, T]:
    result: dict[str, T] = {}
    for item, line in items:
        if name(item) in result:
            raise ConfigError(file, line, key, f"duplicate name {name(item)!r}")
        result[name(item)] = item
    return result


MANAGED_DIR = "config.d"  # in the state folder: resources created through the admin API, one file each
MANAGED_FLOWS = "flows"  # in the state folder: flows put through the admin API
FRAGMENT_SECTIONS = ("campaigns", "destinations", "buyers", "pools", "webhooks", "numbers")


def _merge_fragments(top: _Section, folder: Path) -> None:
    """Add the list sections of every ``*.yaml`` fragment in ``folder`` to the main file's: the admin API writes
    one fragment per resource, so the operator's file (and its comments) is never rewritten. Items keep their
    own file and lines for error messages."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.yaml")):
        fragment = _Section(path, load_located(path), "", 1)
        for name in fragment.data:
            if name not in FRAGMENT_SECTIONS:
                raise fragment.error(str(name), f"a fragment holds only {', '.join(FRAGMENT_SECTIONS)}")
            items = fragment.raw(str(name))
            if not isinstance(items, LocatedList):
                raise fragment.error(str(name), "expected a list")
            merged = top.data.get(name)
            if merged is None:
                merged = LocatedList()
                merged.line, merged.item_lines = fragment.line_of(str(name)), []
                top.data[name] = merged
                top.data.key_lines[name] = merged.line
            elif not isinstance(merged, LocatedList):
                raise top.error(str(name), "expected a list")
            merged.extend(items)
            merged.item_lines = [*getattr(merged, "item_lines", []), *items.item_lines]


def load_settings(path: Path | str) -> Settings:
    """Read and validate the configuration file; raises ConfigError naming file, line and key."""
    path = Path(path).resolve()
    top = _Section(path, load_located(path), "", 1)
    base = path.parent

    state_dir = (base / top.string("state_dir", "var")).resolve()
    _merge_fragments(top, state_dir / MANAGED_DIR)
    db = top.section("database")
    database = (state_dir / db.string("path", "ringpool.db")).resolve()
    db.reject_unknown()

    ast = top.section("asterisk")
    asterisk = AsteriskSettings(
        bundled=ast.boolean("bundled", True),
        sip_bind=_host(ast, "sip_bind", "127.0.0.1"),
        sip_port=_port(ast, "sip_port", 5060),
        http_port=_port(ast, "http_port", 8088),
        rtp_start=_port(ast, "rtp_start", 20000),
        rtp_end=_port(ast, "rtp_end", 29999),
    )
    if asterisk.rtp_end <= asterisk.rtp_start:
        raise ast.error("rtp_end", "must be above rtp_start")
    run_dir = state_dir / "asterisk"
    accounts_file = ast.string("accounts_file", None)
    security_log = ast.string("security_log", None)
    asterisk = AsteriskSettings(
        **{k: getattr(asterisk, k) for k in ("bundled", "sip_bind", "sip_port", "http_port", "rtp_start", "rtp_end")},
        accounts_file=(base / accounts_file).resolve() if accounts_file else
        (run_dir / "etc" / "pjsip_ringpool.conf" if asterisk.bundled else None),
        security_log=(base / security_log).resolve() if security_log else
        (run_dir / "log" / "security.log" if asterisk.bundled else None))
    ast.reject_unknown()

    ari_s = top.section("ari")
    ari = AriSettings(
        url=ari_s.string("url", f"http://127.0.0.1:{asterisk.http_port}",
                         pattern=re.compile(r"^https?://[^\s/]+(:\d+)?/?$"), hint="expected http://host:port"),
        username=ari_s.string("username", "ringpool", pattern=re.compile(r"^[A-Za-z0-9_-]{1,40}$")),
        password=ari_s.string("password", None),
        app=ari_s.string("app", "ringpool", pattern=re.compile(r"^[A-Za-z0-9_-]{1,40}$")),
    )
    if ari.password is None and not asterisk.bundled:
        raise ari_s.error("password", "is required when asterisk.bundled is false (use your ari.conf password)")
    ari_s.reject_unknown()

    adm = top.section("admin")
    admin = AdminSettings(bind=_host(adm, "bind", "127.0.0.1"), port=_port(adm, "port", 8080),
                          token=adm.string("token", None, pattern=re.compile(r"^\S{24,}$"),
                                           hint="at least 24 characters, no spaces"))
    adm.reject_unknown()

    trunks = _unique([(_read_trunk(s), line) for s, line in top.items("trunks")], path, "trunks", lambda t: t.name)
    if not trunks:
        raise ConfigError(path, top.line_of("trunks"), "trunks", "at least one trunk is needed to receive calls")
    from dialplan.hours import read_schedules
    schedules = read_schedules(top.section("schedules"))
    destinations = _unique([(_read_destination(s, schedules), line) for s, line in top.items("destinations")],
                           path, "destinations", lambda d: d.name)
    for s, _line in top.items("destinations"):
        dest = destinations[str(s.data["name"])]  # the name may have been read as a YAML int
        if dest.kind == "trunk":
            trunk = trunks.get(dest.trunk or "")
            if trunk is None:
                raise s.error("trunk", f"no trunk named {dest.trunk!r}")
            if trunk.contact is None:
                raise s.error("trunk", f"trunk {dest.trunk!r} has no contact to send calls to")

    campaign_items = [(_read_campaign(s), s, line) for s, line in top.items("campaigns")]
    campaigns = _unique([(c, line) for (c, _n), _s, line in campaign_items], path, "campaigns", lambda c: c.name)
    numbers: dict[str, TrackingNumber] = {}
    for (campaign, campaign_numbers), s, _line in campaign_items:
        if campaign.destination not in destinations:
            raise s.error("destination", f"no destination named {campaign.destination!r}")
        fallback = campaign.fallback.destination
        if fallback is not None and fallback not in destinations:
            raise ConfigError(path, s.section("fallback").line_of("destination"),
                              f"{s.key}.fallback.destination", f"no destination named {fallback!r}")
        for number, line in campaign_numbers:
            if number in numbers:
                raise ConfigError(path, line, f"{s.key}.numbers",
                                  f"{number} is already a tracking number of campaign {numbers[number].campaign!r}")
            numbers[number] = TrackingNumber(number=number, campaign=campaign.name)
    for entry, line in top.items("numbers"):  # numbers added on their own (the admin API's import)
        number = entry.string("number", pattern=re.compile(r"^\+?[0-9 ()-]{3,30}$"), hint="a phone number")
        campaign_name = entry.string("campaign", pattern=NAME_RE)
        entry.reject_unknown()
        if campaign_name not in campaigns:
            raise entry.error("campaign", f"no campaign named {campaign_name!r}")
        digits = normalise_number(number)
        if digits in numbers:
            raise entry.error("number", f"{digits} is already a tracking number of campaign "
                                        f"{numbers[digits].campaign!r}")
        numbers[digits] = TrackingNumber(number=digits, campaign=campaign_name)
    pools, inventory = _read_pools(top, campaigns, numbers)
    speech = _read_speech(top.section("speech"), base)
    test_accounts = _unique([(_read_test_account(s), line) for s, line in top.items("test_accounts")],
                            path, "test_accounts", lambda a: a.username)
    security = _read_security(top.section("security"))
    from ari_app.outbox.model import read_sinks
    from ari_app.screening.model import ScreeningSettings, read_screening
    webhooks = read_sinks(top.items("webhooks"))
    screening = read_screening(top.section("screening"), ScreeningSettings())
    for (campaign, _numbers), s, _line in campaign_items:
        if s.data.get("screening") is not None:
            campaigns[campaign.name] = replace(campaign, screening=read_screening(s.section("screening"), screening))
    flows = _read_flows(top, base, schedules, state_dir / MANAGED_FLOWS)
    _resolve_routing(campaign_items, campaigns, destinations, flows)
    for (campaign, _numbers), s, _line in campaign_items:
        if s.data.get("click_to_call") is not None:
            campaigns[campaign.name] = replace(campaigns[campaign.name],
                                               click_to_call=_read_click_to_call(s.section("click_to_call"), trunks))
        queue = campaigns[campaign.name].queue
        if queue is not None and queue.fallback == "callback" and campaigns[campaign.name].click_to_call is None:
            raise s.section("queue").error("fallback", "callback needs the campaign's click_to_call section "
                                                       "(the trunk and the numbers that may be called back)")
    from dialplan.bids import read_buyers
    buyers = read_buyers(top.items("buyers"), destinations, schedules, campaigns)
    top.reject_unknown()

    return Settings(path=path, state_dir=state_dir, database=database, ari=ari, asterisk=asterisk,
                    admin=admin, trunks=trunks, destinations=destinations, campaigns=campaigns, numbers=numbers,
                    speech=speech, test_accounts=test_accounts, security=security, pools=pools,
                    inventory=inventory, webhooks=webhooks, screening=screening, schedules=schedules, flows=flows,
                    buyers=buyers)


def _read_flows(top: _Section, base: Path, schedules: Collection[str], managed: Path) -> dict[str, "Flow"]:
    """`flows:` names the folder of IVR flow files (default: flows/ beside this file, when it exists); flows
    put through the admin API live in the state folder's flows/ and may not reuse a name."""
    from ivr.flow import load_flows

    folder = top.string("flows", None)
    path = (base / folder).resolve() if folder is not None else base / "flows"
    if folder is not None and not path.is_dir():
        raise top.error("flows", f"no such folder: {path}")
    flows = load_flows(path, schedules=schedules) if path.is_dir() else {}
    if managed.is_dir() and managed.resolve() != path.resolve():
        for name, flow in load_flows(managed, schedules=schedules).items():
            if name in flows:
                raise ConfigError(flow.file, 1, "name", f"flow {name!r} is already defined in {flows[name].file}")
            flows[name] = flow
    return flows


def _resolve_routing(items: list[Any], campaigns: dict[str, Campaign], destinations: Collection[str],
                     flows: Mapping[str, "Flow"]) -> None:
    """Each campaign's routing (its `routing:` section over its destination and fallback), and the route
    nodes of its flow resolved over it: every destination named anywhere is checked at load."""
    from dialplan.routing import default_routing, read_routing
    from ivr.flow import Queue, Route

    for (campaign, _numbers), s, _line in items:
        campaign = campaigns[campaign.name]
        routing = default_routing(campaign.destination, campaign.ring_timeout, campaign.fallback.destination)
        if s.data.get("routing") is not None:
            routing = read_routing(s.section("routing"), destinations, routing)
        flow_routes: dict[str, Any] = {}
        if campaign.flow is not None:
            flow = flows.get(campaign.flow)
            if flow is None:
                raise s.error("flow", f"no flow named {campaign.flow!r} in the flows folder")
            for node in flow.nodes.values():
                if isinstance(node, Queue) and (campaign.queue is None or node.spec):
                    raise ConfigError(flow.file, node.line, f"nodes.{node.name}.queue",
                                      f"campaign {campaign.name!r} uses this flow: the queue node needs the "
                                      "campaign's queue section, and takes no settings of its own ({})"
                                      if node.spec else f"campaign {campaign.name!r} uses this flow but has no "
                                      "queue section")
                if isinstance(node, Route) and not isinstance(node.spec, str):
                    spec = _Section(Path(flow.file), node.spec, f"nodes.{node.name}.route", node.line)
                    flow_routes[node.name] = read_routing(spec, destinations, routing)
        campaigns[campaign.name] = replace(campaign, routing=routing, flow_routes=flow_routes)


def _read_pools(top: _Section, campaigns: dict[str, Campaign],
                numbers: dict[str, TrackingNumber]) -> tuple[dict[str, "Pool"], tuple[str, ...]]:
    """`pools:` and `inventory:`; adds the pools' numbers to ``numbers``, each number once in the whole file."""
    from ari_app.tracking.model import read_number_list, read_pool

    def claim(number: str, line: int, key: str, entry: TrackingNumber | None) -> None:
        if number in numbers or number in inventory:
            owner = numbers[number].campaign if number in numbers else "the inventory"
            raise ConfigError(top.file, line, key, f"{number} is already a tracking number of {owner!r}")
        if entry is not None:
            numbers[number] = entry

    inventory: dict[str, None] = {}
    items = [(read_pool(s), s, line) for s, line in top.items("pools")]
    pools = _unique([(p, line) for (p, _n), _s, line in items], top.file, "pools", lambda p: p.name)
    for (pool, pool_numbers), s, _line in items:
        if pool.campaign not in campaigns:
            raise s.error("campaign", f"no campaign named {pool.campaign!r}")
        for number, line in pool_numbers:
            role = ("extension" if pool.mode == "extension" else
                    "overflow" if number == pool.overflow_number else "pool")
            claim(number, line, f"{s.key}.numbers", TrackingNumber(number, pool.campaign, pool.name, role))
    for number, line in read_number_list(top, "inventory"):
        claim(number, line, "inventory", None)
        inventory[number] = None
    return pools, tuple(inventory)
