"""StreamHub: live calls' detectors on shared StreamBanks, fed frame by frame.

A `StreamBank` is cheap per stream only when many streams are processed in
one call, but it advances every stream in lock step.  Live calls deliver
20 ms frames each, on their own schedule (bursty by tens of ms), and start
and stop at any time.  The hub bridges the two:

* a fixed-capacity pool of slots per bank (a second bank of the same
  capacity is added when the first is full);
* `push` only appends a frame to the slot's buffer (thread-safe, tiny lock);
* `pump` processes, per bank, as many whole blocks (default 100 ms) as every
  live slot of that bank has buffered, in one vectorised `process` call.
  Free slots are fed zeros (their events are discarded, and they are reset
  before reuse); a bank with no live slot is skipped outright;
* a live slot that has been short of a block for `max_lag_s` while others
  had data is padded with zeros, so one stalled call cannot hold back the
  rest (`stats.padded_blocks` / `padded_s`).  Padding is stream time: events
  after it are that much later than in the audio actually received;
* a slot joins its bank (its clock starts) at the block where its first
  audio is processed, so a call opened before its media flows neither holds
  others back nor accumulates leading zeros;
* `expect_speech` / `arm_amd` are queued at the slot's current stream
  position (the audio pushed so far, in 5 ms sub-blocks) and applied exactly
  there, splitting the block if needed, so event times equal those of a
  `DetectorPipeline` fed the same frames;
* `close` processes the slot's remaining audio at once, on a throw-away copy
  of the bank when other calls share it (so they do not move), and flushes
  open runs, exactly like `DetectorPipeline.close`; that is an extra bank
  pass per call.  `release` instead lets the remaining audio ride along in
  the next pump(s) and flushes the slot there, at the sub-block where its
  audio ends (the final events come out of `pump`, `take_finished` lists
  the handle); `HubRunner.close` uses it.

Threads: `push`, `expect_speech`, `arm_amd`, `time`, `open`, `release` and
`stats` may be called from one thread (the event loop) while `pump` runs in another;
`pump` and `close` touch the banks and must not run concurrently with each
other (`HubRunner` runs both on its single executor thread).

`HubRunner` is the asyncio driver: a task calls `pump` every block in a
single-thread executor and hands events to per-call callbacks.
"""
from __future__ import annotations

import asyncio
import copy
import heapq
import inspect
import itertools
import logging
import threading
import time as _time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .amd import AMDParams
from .bank import DetectorConfig, StreamBank, to_int16
from .events import Event
from .goertzel import SUB_BLOCK_S

log = logging.getLogger(__name__)

_SPEECH, _AMD, _CLOSE = "expect_speech", "arm_amd", "close"


@dataclass(frozen=True)
class HubStats:
    streams: int          # open handles
    live: int             # handles whose audio has started (joined a bank)
    banks: int
    capacity: int         # slots per bank
    pumps: int            # pump() calls
    blocks: int           # bank blocks processed (one vectorised block for a whole bank counts once)
    stream_blocks: int    # blocks processed summed over live streams
    padded_blocks: int    # stream blocks that were (partly) zero padded because the stream was starved
    padded_s: float       # seconds of zeros inserted by padding
    audio_s: float        # stream-seconds advanced by pump() (blocks x live streams, padding included)
    cpu_s: float          # thread CPU seconds spent in pump() and close()


class _Slot:
    __slots__ = ("bank", "idx", "handle", "live", "closing", "chunks", "avail", "pushed", "done",
                 "controls", "starved_since", "padded", "pad_samples")

    def __init__(self, bank: "_Bank", idx: int):
        self.bank, self.idx = bank, idx
        self.handle: int | None = None
        self.clear()

    def clear(self) -> None:
        self.live = False                  # joined: its clock runs in the bank
        self.closing = False               # released: finish at the end of its audio in a pump
        self.chunks: list[np.ndarray] = []  # pushed, not yet processed
        self.avail = 0                     # samples in chunks
        self.pushed = 0                    # samples pushed + zeros padded (stream position)
        self.done = 0                      # sub-blocks processed since join
        self.controls: list[tuple[int, str, Any]] = []  # (sub-block position, kind, arg)
        self.starved_since: float | None = None
        self.padded = False                # padded since its last push
        self.pad_samples = 0


class _Bank:
    __slots__ = ("bank", "slots", "free", "n_open")

    def __init__(self, bank: StreamBank):
        self.bank = bank
        self.slots = [_Slot(self, i) for i in range(bank.n)]
        self.free = list(range(bank.n))  # a heap: lowest slot first keeps banks packed
        self.n_open = 0


@dataclass
class _Entry:
    slot: _Slot
    handle: int
    join: bool
    chunks: list
    take: int
    p0: int
    controls: list
    close_at: int | None = None  # released slot: flush at this sub-block offset, then free it


class StreamHub:
    """Many live streams on shared StreamBanks; see the module docstring.

    rate: 8000 or 16000.  capacity: slots per bank (bigger amortises the fixed
    per-sub-block cost better; idle slots cost about as much as live ones).
    block_s: processing granularity, a multiple of 5 ms.  max_lag_s: how long a
    live stream may be short of a block while others have data before it is
    zero padded.  max_blocks: at most this many blocks per bank per pump (bounds
    one pump's latency after a hiccup; the rest follows on the next pump).
    clock: monotonic seconds (tests inject a fake one).
    """

    def __init__(self, rate: int = 16000, config: DetectorConfig | None = None, capacity: int = 64,
                 block_s: float = 0.1, max_lag_s: float = 0.3, max_blocks: int = 20,
                 clock: Callable[[], float] = _time.monotonic):
        self.rate, self.cfg, self.capacity = rate, config or DetectorConfig(), int(capacity)
        if self.capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.sub_len = int(round(rate * SUB_BLOCK_S))
        subs = block_s / SUB_BLOCK_S
        if subs < 1 or abs(subs - round(subs)) > 1e-9:
            raise ValueError(f"block_s must be a positive multiple of {SUB_BLOCK_S} s, got {block_s}")
        self.block_subs = int(round(subs))
        self.block_len = self.block_subs * self.sub_len
        self.block_s = self.block_subs * SUB_BLOCK_S
        self.max_lag_s, self.max_blocks, self._clock = float(max_lag_s), max(1, int(max_blocks)), clock
        self._lock = threading.Lock()
        self._banks: list[_Bank] = []
        self._handles: dict[int, _Slot] = {}
        self._ids = itertools.count(1)
        self._finished: list[int] = []
        self._pumps = self._blocks = self._stream_blocks = self._pad_blocks = self._pad_samples = 0
        self._cpu = 0.0
        self._bank_lock = threading.Lock()  # serialises bank creation in open()

    # ---- stream control -------------------------------------------------------------
    def open(self) -> int:
        """Take a free slot; returns a handle (never reused).  The slot's detector
        state is reset when its first audio is processed (and was reset at the
        previous user's close), so it starts clean."""
        with self._bank_lock:  # serialises opens; pushes only wait for the short buffer lock
            with self._lock:
                h = self._take_slot()
            if h is not None:
                return h
            nb = _Bank(StreamBank(self.capacity, self.rate, self.cfg))  # a few ms: outside the buffer lock
            with self._lock:
                self._banks.append(nb)
                return self._take_slot()

    def _take_slot(self) -> int | None:
        for b in self._banks:
            if b.free:
                s = b.slots[heapq.heappop(b.free)]
                s.clear()
                s.handle = h = next(self._ids)
                b.n_open += 1
                self._handles[h] = s
                return h
        return None

    def push(self, handle: int, pcm) -> None:
        """Append audio (native int16 array or bytes, any length).  Cheap: no DSP here."""
        x = to_int16(pcm)
        if not isinstance(pcm, bytes):  # arrays, bytearray, memoryview: the caller may reuse the buffer
            x = x.ravel().copy()
        if not len(x):
            return
        with self._lock:
            s = self._handles[handle]
            s.chunks.append(x)
            s.avail += len(x)
            s.pushed += len(x)
            if s.padded:  # audio is flowing again: a fresh grace period before padding
                s.padded, s.starved_since = False, None

    def expect_speech(self, handle: int, within_s: float) -> None:
        """A `no_speech` event unless speech starts within within_s of the audio pushed so far."""
        self._control(handle, _SPEECH, float(within_s))

    def arm_amd(self, handle: int, params: AMDParams | None = None) -> None:
        """Start answering-machine detection at the current end of the pushed audio."""
        self._control(handle, _AMD, params)

    def _control(self, handle: int, kind: str, arg) -> None:
        with self._lock:
            s = self._handles[handle]
            s.controls.append((s.pushed // self.sub_len, kind, arg))

    def time(self, handle: int) -> float:
        """Stream time of the audio pushed so far (zero padding included), in whole
        5 ms sub-blocks: what `DetectorPipeline.time` reads after the same frames."""
        with self._lock:
            return (self._handles[handle].pushed // self.sub_len) * SUB_BLOCK_S

    def padded_s(self, handle: int) -> float:
        """Seconds of zeros inserted into this stream because it was starved."""
        with self._lock:
            return self._handles[handle].pad_samples / self.rate

    def buffered_s(self, handle: int) -> float:
        """Seconds of pushed audio not processed yet (the stream's current latency)."""
        with self._lock:
            return self._handles[handle].avail / self.rate

    @property
    def handles(self) -> list[int]:
        with self._lock:
            return list(self._handles)

    @property
    def stats(self) -> HubStats:
        with self._lock:
            return HubStats(
                streams=len(self._handles), live=sum(s.live for s in self._handles.values()),
                banks=len(self._banks), capacity=self.capacity, pumps=self._pumps, blocks=self._blocks,
                stream_blocks=self._stream_blocks, padded_blocks=self._pad_blocks,
                padded_s=self._pad_samples / self.rate,
                audio_s=self._stream_blocks * self.block_s, cpu_s=self._cpu)

    def release(self, handle: int) -> None:
        """Close a stream without waiting: its remaining audio is processed by the
        following pump(s) together with the other streams (no extra bank pass,
        unlike `close`), then its open runs are flushed there.  Its final events
        come out of `pump()`; `take_finished()` then lists the handle.  The handle
        is invalid for push/time/... from now on."""
        with self._lock:
            s = self._handles.pop(handle)
            if not s.live and s.avail < self.sub_len:  # never fed a sub-block: nothing to flush
                self._free(s)
                self._finished.append(handle)
            else:
                s.closing = True

    def take_finished(self) -> list[int]:
        """Handles released whose final events have all been returned by pump()."""
        with self._lock:
            out, self._finished = self._finished, []
            return out

    # ---- processing -----------------------------------------------------------------
    def pump(self) -> list[tuple[int, Event]]:
        """Process what every bank's live streams have buffered, in whole blocks;
        return (handle, Event) pairs."""
        c = _time.thread_time()
        now = self._clock()
        with self._lock:
            banks = list(self._banks)
            self._pumps += 1
        out: list[tuple[int, Event]] = []
        for b in banks:
            with self._lock:  # held per bank only (~2 us per slot) so pushes never wait long
                plan = self._plan(b, now)
            if plan is not None:
                out.extend(self._run(*plan))
        dt = _time.thread_time() - c
        with self._lock:
            self._cpu += dt
        return out

    def _plan(self, b: _Bank, now: float):
        """Under the lock: decide how many blocks bank b advances and take the buffers."""
        if not b.n_open:
            return None
        B, sub = self.block_len, self.sub_len
        occ = [s for s in b.slots if s.handle is not None]
        closing = [s for s in occ if s.closing]
        if not closing and not any(s.avail >= B for s in occ):
            return None  # nobody has a block: nothing to do, and nobody is starved relative to others
        hold, overdue, live_ready = False, [], []
        for s in occ:
            if not s.live or s.closing:
                continue
            if s.avail >= B:
                s.starved_since = None
                live_ready.append(s)
                continue
            if s.starved_since is None:
                s.starved_since = now
            if now - s.starved_since >= self.max_lag_s:
                overdue.append(s)
            else:
                hold = True
        if hold:
            return None
        pending = [s for s in occ if not s.live and not s.closing and s.avail >= B]
        base = live_ready or pending
        if base:
            k = min(s.avail // B for s in base)
        else:  # only released streams (and overdue ones) left: enough blocks to finish the longest
            k = max(1, -(-max(s.avail // sub for s in closing) // self.block_subs))
        k = min(k, self.max_blocks)
        n = k * B
        K = k * self.block_subs
        entries = []
        for s in live_ready + overdue + [s for s in pending if s.avail >= n]:
            take = min(s.avail, n)
            if take < n:  # starved: pad with zeros up to the blocks
                pad = n - take
                s.pushed += pad
                s.padded = True
                s.pad_samples += pad
                self._pad_blocks += -(-pad // B)
                self._pad_samples += pad
            entries.append(self._take(s, take, K, None))
        for s in closing:
            subs = s.avail // sub
            if subs <= K:  # its audio ends in this pass: flush it there (drop the < 5 ms tail)
                entries.append(self._take(s, subs * sub, subs, subs))
            else:
                entries.append(self._take(s, n, K, None))
        self._blocks += k
        self._stream_blocks += k * len(entries)
        return b, k, entries

    def _take(self, s: _Slot, take: int, subs: int, close_at: int | None) -> _Entry:
        end = s.done + subs
        if close_at is None:
            ctl = [c for c in s.controls if c[0] < end]
            s.controls = [c for c in s.controls if c[0] >= end]
        else:
            ctl, s.controls = s.controls, []
        e = _Entry(s, s.handle, not s.live, s.chunks, take, s.done, ctl, close_at)
        s.chunks = []
        s.avail -= take
        s.live = True
        s.done = end
        return e

    def _run(self, b: _Bank, k: int, entries: list[_Entry]) -> list[tuple[int, Event]]:
        """Outside the lock: build the (N, k*block) array, process, put residues back."""
        bank = b.bank
        n = k * self.block_len
        pcm = np.zeros((bank.n, n), np.int16)
        residues = []
        for e in entries:
            if not e.chunks:
                continue
            arr = e.chunks[0] if len(e.chunks) == 1 else np.concatenate(e.chunks)
            pcm[e.slot.idx, :e.take] = arr[:e.take]
            if len(arr) > e.take and e.close_at is None:
                residues.append((e.slot, arr[e.take:]))
        if residues:
            with self._lock:
                for s, r in residues:
                    s.chunks.insert(0, r)
        for e in entries:
            if e.join:
                bank.reset_stream(e.slot.idx)
        rows = {e.slot.idx: e.handle for e in entries}
        cuts: dict[int, list] = {}
        for e in entries:
            for pos, kind, arg in e.controls:
                off = max(0, pos - e.p0)
                if e.close_at is not None:
                    off = min(off, e.close_at)
                cuts.setdefault(off, []).append((e.slot.idx, kind, arg))
        for e in entries:  # after the controls at the same offset
            if e.close_at is not None:
                cuts.setdefault(e.close_at, []).append((e.slot.idx, _CLOSE, None))
        out = self._process(bank, pcm, cuts, rows)
        done = [e for e in entries if e.close_at is not None]
        if done:
            with self._lock:
                for e in done:
                    self._free(e.slot)
                    self._finished.append(e.handle)
        return out

    def _process(self, bank: StreamBank, pcm: np.ndarray, cuts: dict,
                 rows: dict[int, int]) -> list[tuple[int, Event]]:
        """bank.process in segments, applying controls at their sub-block offsets
        (offset o = after the first o sub-blocks of pcm); events of the streams in
        `rows` (bank row -> handle) only.  A _CLOSE control flushes the row and
        drops it from `rows`."""
        out: list[tuple[int, Event]] = []
        total = pcm.shape[1] // self.sub_len

        def run(a: int, z: int) -> None:
            seg = pcm if (a, z) == (0, total) else pcm[:, a * self.sub_len:z * self.sub_len]
            out.extend((rows[i], e) for i, e in bank.process(seg) if i in rows)

        a = 0
        for off in sorted(cuts):
            if off > a:
                run(a, off)
                a = off
            for i, kind, arg in cuts[off]:
                if kind == _CLOSE:
                    h = rows.pop(i)
                    out.extend((h, e) for e in bank.close_stream(i))
                else:
                    self._apply(bank, i, kind, arg)
        if a < total:
            run(a, total)
        return out

    @staticmethod
    def _apply(bank: StreamBank, i: int, kind: str, arg) -> None:
        if kind == _SPEECH:
            bank.expect_speech(i, arg)
        else:
            bank.arm_amd(i, arg)

    def _free(self, s: _Slot) -> None:
        """Under the lock: give the slot back (its bank row was reset by close_stream/reset_stream)."""
        b = s.bank
        s.handle = None
        s.clear()
        b.n_open -= 1
        heapq.heappush(b.free, s.idx)

    def close(self, handle: int) -> list[Event]:
        """End a stream now: process its buffered audio (whole 5 ms sub-blocks, like
        DetectorPipeline.close), flush open runs, free the slot.  The audio left
        costs a bank pass of its own (on a copy of the bank when other streams
        share it, so they do not move); `release` avoids that."""
        c = _time.thread_time()
        with self._lock:
            s = self._handles.pop(handle)
            chunks, avail, controls, live, p0 = s.chunks, s.avail, s.controls, s.live, s.done
            s.chunks, s.avail, s.controls = [], 0, []
            b = s.bank
            others = any(o.live and o is not s for o in b.slots if o.handle is not None)
        bank, i = b.bank, s.idx
        n_sub = avail // self.sub_len
        try:
            if n_sub == 0 and not live:
                events: list[Event] = []  # never fed a whole sub-block: nothing to report
            else:
                # Other live streams share the bank: work on a copy so they do not move.
                work = copy.deepcopy(bank) if n_sub and others else bank
                if not live:
                    work.reset_stream(i)
                pcm = np.zeros((work.n, n_sub * self.sub_len), np.int16)
                if n_sub:
                    pcm[i] = np.concatenate(chunks)[: n_sub * self.sub_len]
                cuts: dict[int, list] = {}
                for pos, kind, arg in controls:
                    cuts.setdefault(min(n_sub, max(0, pos - p0)), []).append((i, kind, arg))
                cuts.setdefault(n_sub, []).append((i, _CLOSE, None))
                events = [e for _, e in self._process(work, pcm, cuts, {i: handle})]
                if work is not bank:
                    bank.reset_stream(i)
        finally:
            dt = _time.thread_time() - c
            with self._lock:
                self._free(s)
                self._cpu += dt
        return events


Callback = Callable[[int, Event], Any]


class HubRunner:
    """asyncio driver for a StreamHub.

    `open(callback)` -> handle; `callback(handle, event)` is called on the
    event loop for each event (a coroutine result is scheduled as a task).
    `push` / `expect_speech` / `arm_amd` are plain calls from the loop.
    `start()` launches a task that every `interval_s` (default block_s) runs
    `hub.pump` on the runner's own single-thread executor.  `await close(h)`
    releases the stream (its remaining audio rides along in the next pump(s),
    so closing costs no extra bank pass; when the task is not running it uses
    the hub's immediate close on the executor), dispatches the final events to
    the callback and returns them.  `await stop()` closes every open handle
    (unless told not to) and ends the task.
    """

    def __init__(self, hub: StreamHub | None = None, *, rate: int = 16000,
                 config: DetectorConfig | None = None, capacity: int = 64, block_s: float = 0.1,
                 max_lag_s: float = 0.3, interval_s: float | None = None):
        self.hub = hub or StreamHub(rate, config, capacity=capacity, block_s=block_s, max_lag_s=max_lag_s)
        self.interval_s = interval_s or self.hub.block_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-hub")
        self._callbacks: dict[int, Callback] = {}
        self._closing: dict[int, tuple[asyncio.Future, list[Event]]] = {}
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._cb_tasks: set[asyncio.Task] = set()

    # ---- streams --------------------------------------------------------------------
    def open(self, callback: Callback) -> int:
        h = self.hub.open()
        self._callbacks[h] = callback
        return h

    def push(self, handle: int, pcm) -> bool:
        """Queue audio; False (and dropped) if the handle is closing or closed."""
        if handle not in self._callbacks or handle in self._closing:
            return False
        self.hub.push(handle, pcm)
        return True

    def expect_speech(self, handle: int, within_s: float) -> None:
        self.hub.expect_speech(handle, within_s)

    def arm_amd(self, handle: int, params: AMDParams | None = None) -> None:
        self.hub.arm_amd(handle, params)

    def time(self, handle: int) -> float:
        return self.hub.time(handle)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self, handle: int) -> list[Event]:
        """Flush the stream (its buffered audio and open runs), dispatch its final
        events to the callback, return them, free the slot."""
        if handle not in self._callbacks or handle in self._closing:
            raise KeyError(handle)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._closing[handle] = (fut, [])
        try:
            if self.running and not self._stopping:
                self.hub.release(handle)  # the pump task finishes it
                return await fut
            events = await loop.run_in_executor(self._executor, self.hub.close, handle)
            self._dispatch([(handle, e) for e in events])
            return events
        finally:
            self._closing.pop(handle, None)
            self._callbacks.pop(handle, None)

    # ---- the pump task --------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("already started")
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-hub-pump")

    async def stop(self, close_streams: bool = True) -> None:
        """Close every open handle (with close_streams) and wait for closes in
        progress, then stop pumping and shut the executor down."""
        if close_streams:
            await asyncio.gather(*(self.close(h) for h in list(self._callbacks) if h not in self._closing))
        pending = [f for f, _ in self._closing.values()]
        if pending and self.running:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        if self._cb_tasks:
            await asyncio.gather(*self._cb_tasks, return_exceptions=True)
        self._executor.shutdown(wait=False)

    def _pump(self) -> tuple[list[tuple[int, Event]], list[int]]:
        return self.hub.pump(), self.hub.take_finished()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while not self._stopping:
            next_t += self.interval_s
            try:
                events, finished = await loop.run_in_executor(self._executor, self._pump)
            except Exception:  # keep pumping; one bad block must not stop every call's detection
                log.exception("stream hub pump failed")
                events, finished = [], []
            self._dispatch(events)
            for h in finished:
                fut, final = self._closing.get(h, (None, None))
                if fut is not None and not fut.done():
                    fut.set_result(final)
            delay = next_t - loop.time()
            if delay < 0:  # fell behind: do not burst, the next pump takes several blocks anyway
                next_t = loop.time()
                delay = 0
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    def _dispatch(self, events: list[tuple[int, Event]]) -> None:
        for h, e in events:
            cb = self._callbacks.get(h)
            if cb is None:
                continue
            closing = self._closing.get(h)
            if closing is not None:
                closing[1].append(e)
            try:
                r = cb(h, e)
                if inspect.isawaitable(r):
                    t = asyncio.ensure_future(r)
                    self._cb_tasks.add(t)
                    t.add_done_callback(self._cb_done)
            except Exception:
                log.exception("stream hub callback failed for handle %s (%s)", h, e.kind)

    def _cb_done(self, t: asyncio.Task) -> None:
        self._cb_tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("stream hub callback task failed", exc_info=t.exception())
