"""Ringpool configuration: one YAML file, validated at start into frozen dataclasses.

Every error names the file, the line and the dotted key, so an operator can fix a typo without guessing.
Relative paths in the file are resolved against the file's own folder, not the working directory.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ari_app.yaml_located import ConfigError, LocatedList, LocatedMap, load_located

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

    @property
    def endpoint(self) -> str:
        return f"dest-{self.name}"


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
class Campaign:
    name: str
    title: str
    destination: str
    greeting: str | None
    ring_timeout: int
    fallback: Fallback
    detection: DetectionSettings = DetectionSettings()


@dataclass(frozen=True)
class TrackingNumber:
    number: str
    campaign: str


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
            (_Section(self.file, item, f"{self._path(name)}[{i}]", lines[i] if i < len(lines) else value.line),
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


def _read_destination(s: _Section) -> Destination:
    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    if "trunk" in s.data:
        trunk = s.string("trunk", pattern=NAME_RE)
        number = s.string("number", pattern=re.compile(r"^\+?[0-9]{3,20}$"), hint="digits, optional leading +")
        amd = s.boolean("amd", False)
        s.reject_unknown()
        return Destination(name=name, kind="trunk", trunk=trunk, number=normalise_number(number), amd=amd)
    host = _host(s, "host")
    port = _port(s, "port", 5060)
    user = s.string("user", None, pattern=re.compile(r"^[A-Za-z0-9+._-]{1,64}$"))
    amd = s.boolean("amd", False)
    s.reject_unknown()
    return Destination(name=name, kind="sip", host=host, port=port, user=user, amd=amd)


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


def _read_campaign(s: _Section) -> tuple[Campaign, list[tuple[str, int]]]:
    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    campaign = Campaign(
        name=name,
        title=s.string("title", name),
        destination=s.string("destination", pattern=NAME_RE),
        greeting=s.string("greeting", None, pattern=SOUND_RE, hint="an Asterisk sound name such as hello-world"),
        ring_timeout=s.integer("ring_timeout", 20, low=1, high=300),
        fallback=_read_fallback(s.section("fallback")),
        detection=_read_detection(s.section("detection")),
    )
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


def load_settings(path: Path | str) -> Settings:
    """Read and validate the configuration file; raises ConfigError naming file, line and key."""
    path = Path(path).resolve()
    top = _Section(path, load_located(path), "", 1)
    base = path.parent

    state_dir = (base / top.string("state_dir", "var")).resolve()
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
    destinations = _unique([(_read_destination(s), line) for s, line in top.items("destinations")],
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
    speech = _read_speech(top.section("speech"), base)
    top.reject_unknown()

    return Settings(path=path, state_dir=state_dir, database=database, ari=ari, asterisk=asterisk,
                    admin=admin, trunks=trunks, destinations=destinations, campaigns=campaigns, numbers=numbers,
                    speech=speech)
