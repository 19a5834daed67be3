"""A real SIP softphone (pjsua2) for test calls, run as its own process.

    python -m ari_app.testcall.softphone --call sip:15550001001@127.0.0.1:5060 --record out.wav --hold 4
    python -m ari_app.testcall.softphone --answer --username agent1 --password secret \\
        --registrar sip:127.0.0.1:5060 --wait 30

pjsua2 has its own event loop and aborts at interpreter exit when its objects are torn down in the wrong
order, so each softphone is one process: the library runs on the main thread only (``threadCnt=0``,
``mainThreadOnly=True``, a loop of ``libHandleEvents``), with the null sound device, an 8 kHz clock and
VAD off. Everything pjlib (or anything else) writes to stdout goes to stderr; the process prints exactly
one JSON line, the result, on the real stdout when it is done. Exit code 0: the run completed (whatever
the SIP outcome, e.g. a 404); 1: the run failed (``error`` says why); 2: bad arguments.

Teardown order matters: hang up, wait for DISCONNECTED, destroy player/recorder and let a few clock ticks
pass (the WAV header is completed on a later tick), drop the Call, shut the account down (unregister), drop
it, then ``libDestroy`` last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import wave
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

RESULT_VERSION = 1


# --- audio analysis (pure numpy, no pjsua2) ---------------------------------------------------------------

def _dbfs(value: float) -> float | None:
    return round(20 * math.log10(value), 1) if value > 0 else None


def analyze_wav(path: str | os.PathLike[str], expect_tone: float | None = None, *,
                frame_seconds: float = 0.1, tone_ratio: float = 0.6, min_frame_dbfs: float = -50.0,
                min_tone_seconds: float = 0.3) -> dict[str, Any]:
    """Level and (optionally) presence of a pure tone in a 16-bit PCM WAV.

    ``rms``/``peak`` are linear (full scale = 1.0). A frame counts as tone when it is above
    ``min_frame_dbfs`` and the band of +/- max(25 Hz, 2 bins) around ``expect_tone`` holds at least
    ``tone_ratio`` of its energy; the tone is present when such frames add up to ``min_tone_seconds``.
    """
    with wave.open(str(path), "rb") as wav:
        rate, channels, width, nframes = wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()
        raw = wav.readframes(nframes)
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit WAV, expected 16-bit PCM")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    out: dict[str, Any] = {"sample_rate": rate, "seconds": round(len(samples) / rate, 3) if rate else 0.0}
    if len(samples) == 0:
        out |= {"rms": 0.0, "rms_dbfs": None, "peak": 0.0, "active_seconds": 0.0, "dominant_hz": None}
        if expect_tone:
            out["tone"] = {"hz": expect_tone, "present": False, "seconds": 0.0, "ratio": 0.0}
        return out
    rms = float(np.sqrt(np.mean(samples ** 2)))
    out |= {"rms": round(rms, 5), "rms_dbfs": _dbfs(rms), "peak": round(float(np.max(np.abs(samples))), 5)}

    size = max(64, int(rate * frame_seconds))
    count = len(samples) // size
    frames = samples[: count * size].reshape(count, size) if count else samples[None, :]
    frame_rms = np.sqrt(np.mean(frames ** 2, axis=1))
    active = frame_rms >= 10 ** (min_frame_dbfs / 20)
    out["active_seconds"] = round(float(active.sum()) * size / rate, 3)
    window = np.hanning(frames.shape[1])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / rate)
    if active.any():
        mean_power = power[active].mean(axis=0)
        mean_power[0] = 0.0  # ignore DC
        out["dominant_hz"] = round(float(freqs[int(np.argmax(mean_power))]), 1)
    else:
        out["dominant_hz"] = None
    if expect_tone:
        half_band = max(25.0, 2 * rate / frames.shape[1])
        band = (freqs >= expect_tone - half_band) & (freqs <= expect_tone + half_band)
        total = power[:, 1:].sum(axis=1)
        ratio = np.divide(power[:, band].sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
        tone_frames = active & (ratio >= tone_ratio)
        seconds = float(tone_frames.sum()) * size / rate
        overall = float(power[active][:, band].sum() / power[active][:, 1:].sum()) if active.any() else 0.0
        out["tone"] = {"hz": expect_tone, "present": seconds >= min_tone_seconds, "seconds": round(seconds, 3),
                       "ratio": round(overall, 3)}
    return out


def wav_complete(path: str | os.PathLike[str]) -> bool:
    """True once the RIFF header's sizes match the file (pjmedia writes them when the port is destroyed)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    return int.from_bytes(data[4:8], "little") == len(data) - 8


# --- options ----------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ari_app.testcall.softphone", description=__doc__.split("\n\n")[0])
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--call", metavar="URI", help="caller: call this SIP URI, e.g. sip:15550001001@127.0.0.1:5060")
    role.add_argument("--answer", action="store_true", help="callee: wait for an incoming call and answer it")
    p.add_argument("--username", help="account user (registers when --registrar is given)")
    p.add_argument("--password", default="", help="account password")
    p.add_argument("--registrar", metavar="URI", help="register first, e.g. sip:127.0.0.1:5060")
    p.add_argument("--reg-timeout", type=float, default=5.0, help="seconds to wait for registration (5)")
    p.add_argument("--expires", type=int, default=120, help="registration expiry in seconds (120)")
    p.add_argument("--bind", default="127.0.0.1", help="local address for SIP and RTP (127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="local SIP UDP port (0: any free port)")
    p.add_argument("--caller-id", metavar="NUMBER", help="From user (default: username, else 'softphone')")
    p.add_argument("--caller-name", metavar="NAME", help="From display name")
    p.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                   help="extra SIP header on the INVITE (repeatable)")
    p.add_argument("--play", metavar="WAV", help="play this WAV into the call once it is answered")
    p.add_argument("--play-loop", action="store_true", help="loop --play until hang-up")
    p.add_argument("--record", metavar="WAV", help="record what the far end sends (8 kHz 16-bit mono)")
    p.add_argument("--expect-tone", type=float, metavar="HZ", help="report whether this tone is in the recording")
    p.add_argument("--dtmf", metavar="DIGITS", help="send these digits (RFC 4733) after --dtmf-delay")
    p.add_argument("--dtmf-delay", type=float, default=1.0, help="seconds after answer before --dtmf (1.0)")
    p.add_argument("--dtmf-method", choices=["rfc4733", "info"], default="rfc4733")
    p.add_argument("--dtmf-file", metavar="PATH",
                   help="send the digits written to this file once it appears (answers to prompts the caller "
                        "learns during the call, e.g. a screening challenge's digit)")
    p.add_argument("--hold", type=float, metavar="SECONDS",
                   help="hang up this long after answer (default: wait for the far end's BYE)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="caller: give up (CANCEL/BYE) after this many seconds in all (30)")
    p.add_argument("--answer-delay", type=float, default=0.0, help="callee: ring this long before answering")
    p.add_argument("--reject", type=int, metavar="CODE", help="callee: reject the call with this status (e.g. 486)")
    p.add_argument("--wait", type=float, default=30.0, help="callee: give up after this many seconds in all (30)")
    p.add_argument("--log-level", type=int, default=1, help="pjsua console log level on stderr, 0-6 (1)")
    p.add_argument("--log-file", help="also write the pjsua log (level 5 with SIP messages) to this file")
    p.add_argument("--max-calls", type=int, default=8)
    return p


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \t\r\n") or "\r" in value or "\n" in value:
        raise UsageError(f"bad --header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


# --- the softphone ----------------------------------------------------------------------------------------

def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Softphone:
    """One pjsua2 endpoint, one account, at most one call. Not reusable: one per process."""

    def __init__(self, opts: argparse.Namespace) -> None:
        import pjsua2 as pj  # imported here so that importing this module never loads pjsua2

        self.pj = pj
        self.opts = opts
        self.t0 = time.monotonic()
        self.stop_requested: str | None = None
        self.ep: Any = None
        self.acc: Any = None
        self.call: Any = None
        self.call_media: Any = None
        self.player: Any = None
        self.recorder: Any = None
        self.headers = [parse_header(h) for h in opts.header]
        self.result: dict[str, Any] = {
            "version": RESULT_VERSION, "ok": False, "error": None, "mode": "caller" if opts.call else "callee",
            "target": opts.call, "local_uri": None, "remote_uri": None, "sip_call_id": None,
            "registration": None, "states": [], "final_status": None, "final_reason": None,
            "disconnect_status": None, "disconnect_reason": None,
            "answered": False, "answered_at": None, "connect_duration": None, "hangup_by": None,
            "hangup_reason": None, "dtmf_sent": "", "dtmf_received": "", "played": opts.play,
            "sent_level_max": None, "received_level_max": None, "recording": None, "incoming": None,
            "started_at": _iso(time.time()), "elapsed": None,
        }
        # event-loop state
        self.reg_code: int | None = None
        self.confirmed_at: float | None = None
        self.disconnected_at: float | None = None
        self.incoming_at: float | None = None
        self.answered_sent = False
        self.hangup_sent = False
        self.dtmf_done = False
        self.media_connected = False
        self.unregistering = False
        self.unregister_code: int | None = None
        self._extra_calls: list[Any] = []  # calls refused while busy, kept alive until after their hang-up

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- library ------------------------------------------------------------------------------------------

    def start(self) -> None:
        pj, o = self.pj, self.opts
        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = o.max_calls
        cfg.uaConfig.userAgent = "Ringpool-testcall"
        cfg.logConfig.consoleLevel = o.log_level
        cfg.logConfig.level = 5 if o.log_file else o.log_level
        cfg.logConfig.msgLogging = bool(o.log_file) or o.log_level >= 4
        if o.log_file:
            cfg.logConfig.filename = o.log_file
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.threadCnt = 1
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = o.port
        tcfg.boundAddress = o.bind
        tcfg.publicAddress = o.bind
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        # G.711 first: the 8 kHz clock and Asterisk trunks (ulaw, alaw) make these the natural choice.
        for codec in ep.codecEnum2():
            cid = codec.codecId
            prio = 255 if cid.startswith("PCMU/") else 254 if cid.startswith("PCMA/") else 0
            if cid.startswith("telephone-event"):
                continue
            ep.codecSetPriority(cid, prio)
        self._create_account()

    def _create_account(self) -> None:
        pj, o = self.pj, self.opts
        phone = self

        class _Account(pj.Account):
            def onRegState(self, prm: Any) -> None:
                phone._guard(phone._on_reg_state, prm)

            def onIncomingCall(self, prm: Any) -> None:
                phone._guard(phone._on_incoming_call, prm)

        user = o.caller_id or o.username or "softphone"
        host = o.bind
        if o.registrar:
            host = o.registrar.split(":", 1)[1] if o.registrar.startswith(("sip:", "sips:")) else o.registrar
            host = host.split(";")[0]
        if o.port and not o.registrar:
            host = f"{host}:{o.port}"
        uri = f"sip:{user}@{host}"
        acfg = pj.AccountConfig()
        acfg.idUri = f'"{o.caller_name}" <{uri}>' if o.caller_name else uri
        if o.registrar:
            acfg.regConfig.registrarUri = o.registrar
            acfg.regConfig.timeoutSec = o.expires
            acfg.regConfig.retryIntervalSec = 0
            acfg.regConfig.registerOnAdd = True
        else:
            acfg.regConfig.registerOnAdd = False
        if o.username:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", o.username, 0, o.password))
        acfg.mediaConfig.transportConfig.port = 0          # any free RTP port, never Asterisk's range by accident
        acfg.mediaConfig.transportConfig.boundAddress = o.bind
        acfg.mediaConfig.transportConfig.publicAddress = o.bind
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        self.acc = _Account()
        self.acc.create(acfg, True)
        self.result["local_uri"] = acfg.idUri

    # --- callbacks (run inside libHandleEvents on the main thread) ----------------------------------------

    def _guard(self, fn: Any, *args: Any) -> None:
        """Run a callback body; an exception escaping into pjsua2's director code would abort the process."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported in the result, the run goes on
            info = exc.info() if isinstance(exc, self.pj.Error) else repr(exc)
            self.result.setdefault("callback_errors", []).append(f"{fn.__name__}: {info}")
            self.stop_requested = self.stop_requested or "error"

    def _on_reg_state(self, prm: Any) -> None:
        code = int(prm.code)
        if self.unregistering:
            if code >= 200:
                self.unregister_code = code
                self.result["registration"]["unregister_status"] = code
            return
        if self.reg_code is None or code >= 200 or self.result["registration"] is None:
            self.reg_code = code
            self.result["registration"] = {"status_code": code, "reason": prm.reason, "expires": int(prm.expiration),
                                           "t": round(self.now(), 3)}

    def _on_incoming_call(self, prm: Any) -> None:
        call = self._new_call(prm.callId)
        if self.call is not None or self.result["mode"] != "callee":
            busy = self.pj.CallOpParam()
            busy.statusCode = 486
            call.hangup(busy)
            self._extra_calls.append(call)  # keep alive until after its hang-up
            return
        self.call = call
        self.incoming_at = self.now()
        self.result["incoming"] = _parse_invite(prm.rdata.wholeMsg, prm.rdata.srcAddress)
        self._record_state(call.getInfo())
        ring = self.pj.CallOpParam()
        ring.statusCode = 180
        call.answer(ring)

    def _new_call(self, call_id: int = -1) -> Any:
        pj = self.pj
        phone = self

        class _Call(pj.Call):
            def onCallState(self, prm: Any) -> None:
                if self is phone.call:
                    phone._guard(phone._on_call_state, self)

            def onCallMediaState(self, prm: Any) -> None:
                if self is phone.call:
                    phone._guard(phone._on_call_media_state, self)

            def onDtmfDigit(self, prm: Any) -> None:
                if self is phone.call:
                    phone.result["dtmf_received"] += prm.digit

        return _Call(self.acc, call_id)

    def _record_state(self, ci: Any) -> None:
        states = self.result["states"]
        name = ci.stateText
        entry = {"state": name, "t": round(self.now(), 3), "at": _iso(time.time())}
        if ci.lastStatusCode:
            entry |= {"status_code": int(ci.lastStatusCode), "reason": ci.lastReason}
        if not states or states[-1]["state"] != name or states[-1].get("status_code") != entry.get("status_code"):
            states.append(entry)

    def _on_call_state(self, call: Any) -> None:
        pj = self.pj
        ci = call.getInfo()
        self._record_state(ci)
        self.result["remote_uri"] = ci.remoteUri or self.result["remote_uri"]
        self.result["sip_call_id"] = ci.callIdString or self.result["sip_call_id"]
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = self.now()
            self.result["answered"] = True
            self.result["answered_at"] = _iso(time.time())
            self.result["final_status"], self.result["final_reason"] = 200, "OK"
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and self.disconnected_at is None:
            self.disconnected_at = self.now()
            self.result["disconnect_status"] = int(ci.lastStatusCode)
            self.result["disconnect_reason"] = ci.lastReason
            if self.result["final_status"] is None:
                self.result["final_status"] = int(ci.lastStatusCode)
                self.result["final_reason"] = ci.lastReason
            if not self.hangup_sent:
                code = int(ci.lastStatusCode)
                if self.confirmed_at is not None:
                    self.result["hangup_by"], self.result["hangup_reason"] = "remote", "bye"
                elif code == 487 and self.result["mode"] == "callee":
                    self.result["hangup_by"], self.result["hangup_reason"] = "remote", "cancelled"
                elif code == 408:   # no (final) response: nobody hung up, the transaction timed out
                    self.result["hangup_by"], self.result["hangup_reason"] = None, "no_response"
                else:
                    self.result["hangup_by"], self.result["hangup_reason"] = "remote", "rejected"
            if self.confirmed_at is not None:
                self.result["connect_duration"] = round(self.disconnected_at - self.confirmed_at, 3)
            self._detach_media()

    def _on_call_media_state(self, call: Any) -> None:
        if self.media_connected:
            return
        ci = call.getInfo()
        for i, media in enumerate(ci.media):
            if media.type == self.pj.PJMEDIA_TYPE_AUDIO and media.status == self.pj.PJSUA_CALL_MEDIA_ACTIVE:
                am = call.getAudioMedia(i)
                self.call_media = am
                self.media_connected = True
                self._start_media(am)
                return

    def _start_media(self, am: Any) -> None:
        pj, o = self.pj, self.opts
        if o.record and self.recorder is None:
            Path(o.record).parent.mkdir(parents=True, exist_ok=True)
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(o.record))
            self.recorder = recorder            # created: destroyed (and the WAV completed) in finish()
            am.startTransmit(recorder)
        if o.play and self.player is None:
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(o.play), 0 if o.play_loop else pj.PJMEDIA_FILE_NO_LOOP)
            self.player = player
            player.startTransmit(am)

    def _detach_media(self) -> None:
        """The call's conference port is going away with the call; pjsua disconnects it from the player and
        recorder itself. No stopTransmit here: on a port that is gone (or was never created) pjsua asserts."""
        self.call_media = None

    # --- actions ------------------------------------------------------------------------------------------

    def _hangup(self, reason: str, status: int | None = None) -> None:
        if self.hangup_sent or self.call is None or self.disconnected_at is not None:
            return
        self.hangup_sent = True
        self.result["hangup_by"] = "local"
        self.result["hangup_reason"] = reason
        prm = self.pj.CallOpParam()
        if status:
            prm.statusCode = status
        self.call.hangup(prm)

    def _send_dtmf(self) -> None:
        self.dtmf_done = True
        prm = self.pj.CallSendDtmfParam()
        prm.digits = self.opts.dtmf
        prm.method = (self.pj.PJSUA_DTMF_METHOD_SIP_INFO if self.opts.dtmf_method == "info"
                      else self.pj.PJSUA_DTMF_METHOD_RFC2833)
        try:
            self.call.sendDtmf(prm)
            self.result["dtmf_sent"] = self.opts.dtmf
            self.result["dtmf_sent_t"] = round(self.now(), 3)
        except self.pj.Error as exc:
            self.result["dtmf_error"] = exc.info()

    def _sample_levels(self) -> None:
        """Peak conference levels (0-255). pjmedia names them from the bridge's side of the call's port:
        getRxLevel() is what the bridge gives the call (we send it), getTxLevel() what the call gives the
        bridge (we received it). Both are 0 while nothing flows that way."""
        if self.call_media is None:
            return
        try:
            sent, received = int(self.call_media.getRxLevel()), int(self.call_media.getTxLevel())
        except self.pj.Error:
            return
        self.result["sent_level_max"] = max(self.result["sent_level_max"] or 0, sent)
        self.result["received_level_max"] = max(self.result["received_level_max"] or 0, received)

    def pump(self, seconds: float, until: Any = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ep.libHandleEvents(10)
            if until is not None and until():
                return

    # --- the run ------------------------------------------------------------------------------------------

    def run(self) -> None:
        o = self.opts
        self.start()
        if o.registrar:
            self.pump(o.reg_timeout, lambda: self.reg_code is not None and self.reg_code >= 200)
            if self.reg_code is None or not 200 <= self.reg_code < 300:
                code = self.reg_code if self.reg_code is not None else "timeout"
                self.result["error"] = f"registration failed ({code})"
                return
        if o.call:
            self._make_call()
            limit = o.timeout
        else:
            limit = o.wait
        last_sample = 0.0
        while self.disconnected_at is None:
            self.ep.libHandleEvents(10)
            now = self.now()
            if now - last_sample >= 0.05:
                last_sample = now
                self._sample_levels()
            if self.stop_requested:
                if self.call is None:
                    self.result["error"] = f"stopped ({self.stop_requested}) before any call"
                    return
                self._hangup(self.stop_requested)
            elif now >= limit:
                if self.call is None:
                    self.result["error"] = f"no incoming call within {o.wait} s"
                    return
                self._hangup("timeout")
            elif self.call is not None and not self.answered_sent and self.incoming_at is not None:
                if o.reject:
                    self.answered_sent = True
                    self._hangup("rejected", o.reject)
                elif now - self.incoming_at >= o.answer_delay:
                    self.answered_sent = True
                    ok = self.pj.CallOpParam()
                    ok.statusCode = 200
                    self.call.answer(ok)
            elif self.confirmed_at is not None:
                if o.dtmf and not self.dtmf_done and now - self.confirmed_at >= o.dtmf_delay:
                    self._send_dtmf()
                if o.dtmf_file and not self.dtmf_done and os.path.exists(o.dtmf_file):
                    with open(o.dtmf_file, encoding="utf-8") as handle:
                        o.dtmf = handle.read().strip()
                    if o.dtmf:
                        self._send_dtmf()
                if o.hold is not None and now - self.confirmed_at >= o.hold:
                    self._hangup("hold")
            if self.hangup_sent and self.disconnected_at is None and now >= limit + 5:
                self.result["error"] = "call did not end after hang-up"
                return
        errors = self.result.get("callback_errors")
        if errors:
            self.result["error"] = errors[0]
        self.result["ok"] = not errors

    def _make_call(self) -> None:
        pj = self.pj
        self.call = self._new_call()
        prm = pj.CallOpParam(True)
        for name, value in self.headers:
            header = pj.SipHeader()
            header.hName, header.hValue = name, value
            prm.txOption.headers.append(header)
        self.call.makeCall(self.opts.call, prm)

    def finish(self) -> None:
        """Orderly teardown; safe to call after a partial start."""
        if self.ep is None:
            return
        try:
            if self.call is not None and self.disconnected_at is None:
                self._hangup(self.result["hangup_reason"] or "shutdown")
                self.pump(3.0, lambda: self.disconnected_at is not None)
            self._detach_media()
            recording = self.recorder is not None
            self.player = None
            self.recorder = None       # destroys the WAV writer port; the header is completed on a later tick
            if recording:
                self.pump(2.0, lambda: wav_complete(self.opts.record))
            self.pump(0.05)
            self.call = None
            self._extra_calls.clear()
            if self.acc is not None:
                if self.result["registration"] and 200 <= (self.reg_code or 0) < 300:
                    self.unregistering = True
                    self.acc.setRegistration(False)
                    self.pump(1.0, lambda: self.unregister_code is not None)
                self.acc.shutdown()
                self.pump(0.05)
                self.acc = None
        finally:
            self.ep.libDestroy()
            self.ep = None

    def report(self) -> dict[str, Any]:
        o = self.opts
        if o.record:
            path = Path(o.record)
            rec: dict[str, Any] = {"path": str(path.resolve())}
            if path.exists() and path.stat().st_size >= 44:
                try:
                    rec |= analyze_wav(path, o.expect_tone)
                    rec["complete"] = wav_complete(path)
                except (wave.Error, ValueError, EOFError) as exc:
                    rec["error"] = str(exc)
            else:
                rec["error"] = "no recording (the call had no audio)"
            self.result["recording"] = rec
        self.result["elapsed"] = round(self.now(), 3)
        return self.result


def _parse_invite(message: str, source: str) -> dict[str, Any]:
    head = message.split("\r\n\r\n", 1)[0].split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() not in ("via", "contact", "content-length", "max-forwards", "allow",
                                                "supported", "content-type", "cseq", "call-id"):
            headers.setdefault(name.strip(), value.strip())
    return {"request_line": head[0] if head else "", "source": source, "headers": headers}


# --- process entry point ----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    # Keep the real stdout for the one result line; everything else (pjlib's early prints, logs) -> stderr.
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    start = time.monotonic()
    result: dict[str, Any]
    code = 0
    phone: Softphone | None = None
    try:
        opts = build_parser().parse_args(argv)
        if opts.play:
            try:
                with wave.open(opts.play, "rb") as wav:
                    if wav.getsampwidth() != 2:
                        raise UsageError(f"--play {opts.play}: not 16-bit PCM")
            except (OSError, wave.Error, EOFError) as exc:
                raise UsageError(f"--play {opts.play}: {exc}") from None
        if opts.expect_tone and not opts.record:
            raise UsageError("--expect-tone needs --record")
        if opts.username and not opts.registrar and opts.answer and not opts.port:
            raise UsageError("--answer without --registrar needs --port (nobody could reach us)")
        phone = Softphone(opts)

        def on_signal(signum: int, _frame: Any) -> None:
            if phone is not None:
                phone.stop_requested = signal.Signals(signum).name.lower()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            phone.run()
        finally:
            phone.finish()
        result = phone.report()
        code = 0 if result["ok"] else 1
    except UsageError as exc:
        result, code = {"version": RESULT_VERSION, "ok": False, "error": str(exc)}, 2
    except SystemExit as exc:  # --help
        result, code = {"version": RESULT_VERSION, "ok": False, "error": "usage shown"}, int(exc.code or 0)
    except Exception as exc:  # pjsua2.Error and friends: report, do not abort
        info = exc.info() if hasattr(exc, "info") else repr(exc)
        result = phone.report() if phone is not None else {"version": RESULT_VERSION, "ok": False}
        result |= {"ok": False, "error": f"{type(exc).__name__}: {info}"}
        result.setdefault("elapsed", round(time.monotonic() - start, 3))
        code = 1
    sys.stdout.flush()
    os.write(result_fd, (json.dumps(result, separators=(",", ":"), default=str) + "\n").encode())
    os.close(result_fd)
    return code


if __name__ == "__main__":
    sys.exit(main())
