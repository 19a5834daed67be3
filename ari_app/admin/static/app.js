/* Ringpool's live dashboard. Plain ES2017, no build step, no libraries.
 *
 * Every value from the API reaches the page as text (textContent, createTextNode, setAttribute): never
 * innerHTML. The admin token lives in sessionStorage (this tab only); the live stream authenticates with a
 * single-use ticket, so the token never appears in a URL.
 */
(function () {
  'use strict';

  var TOKEN_KEY = 'ringpool.token';
  var RECENT_LIMIT = 25;
  var KEEP_CALLS = 200;          // call summaries kept in memory
  var LINGER_MS = 8000;          // an ended call stays in the live panel this long
  var STATS_EVERY_MS = 60000;
  var POOLS_EVERY_MS = 15000;
  var ID_RE = /^[A-Za-z0-9._-]{1,80}$/;
  var PALETTE = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];
  var NO_CAMPAIGN_COLOR = '#94a3b8';
  var BADGES = [
    ['fax_detected', 'fax'], ['modem_detected', 'modem'], ['voice_detected', 'voice'],
    ['machine_dtmf', 'machine dtmf'], ['spam', 'spam'], ['is_test', 'test']
  ];
  var SCORE_FIELDS = ['quality', 'score1'];
  var STATE_LABELS = {
    arrived: 'arriving', deciding: 'screening', ringing: 'ringing', dialing: 'ringing', answered: 'answered',
    greeting: 'greeting', ivr: 'in the menu', queued: 'waiting in queue', bridged: 'talking', ended: 'ended'
  };

  var state = {
    token: null,
    calls: new Map(),       // id -> summary (newest known)
    live: new Map(),        // id -> {call, endedAt}
    es: null,
    retries: 0,
    reconnectTimer: null,
    timers: [],
    callId: null,           // the call shown on the call page
    campaignColors: new Map()
  };

  // --- DOM helpers: text only ---------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function addChildren(el, children) {
    for (var i = 0; i < children.length; i++) {
      var c = children[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) { addChildren(el, c); continue; }
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function setAttrs(el, attrs) {
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'dataset') Object.keys(v).forEach(function (d) { el.dataset[d] = String(v[d]); });
      else if (k.indexOf('on') === 0) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    });
    return el;
  }

  function h(tag, attrs) {
    var el = setAttrs(document.createElement(tag), attrs);
    return addChildren(el, Array.prototype.slice.call(arguments, 2));
  }

  function svg(tag, attrs) {
    var el = setAttrs(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs);
    return addChildren(el, Array.prototype.slice.call(arguments, 2));
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function fill(el) { clear(el); return addChildren(el, Array.prototype.slice.call(arguments, 1)); }

  // --- formatting ---------------------------------------------------------------------------------------

  function formatNumber(n) {
    if (!n) return '–';
    var s = String(n);
    var d = s.replace(/^\+/, '');
    if (/^1[0-9]{10}$/.test(d)) d = d.slice(1);
    if (/^[0-9]{10}$/.test(d)) return '(' + d.slice(0, 3) + ') ' + d.slice(3, 6) + '-' + d.slice(6);
    return s;
  }

  function parseTime(iso) { var t = iso ? new Date(iso) : null; return t && !isNaN(t.getTime()) ? t : null; }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function formatTime(iso, withDate) {
    var t = parseTime(iso);
    if (!t) return '–';
    var time = t.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
    if (withDate || !sameDay(t, new Date())) {
      return t.toLocaleDateString([], {year: 'numeric', month: 'short', day: 'numeric'}) + ' ' + time;
    }
    return time;
  }

  function formatSeconds(s) {
    if (s === null || s === undefined || s === '') return '–';
    var n = Number(s);
    if (!isFinite(n)) return '–';
    if (n < 60) return n.toFixed(n < 10 ? 1 : 0) + ' s';
    var m = Math.floor(n / 60);
    var r = Math.round(n - m * 60);
    if (m < 60) return m + ' min ' + (r < 10 ? '0' : '') + r + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function elapsedSince(iso) {
    var t = parseTime(iso);
    if (!t) return '';
    var s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
    var m = Math.floor(s / 60);
    return m + ':' + (s % 60 < 10 ? '0' : '') + (s % 60);
  }

  function offsetFrom(startIso, iso) {
    var a = parseTime(startIso);
    var b = parseTime(iso);
    if (!a || !b) return '';
    var d = (b.getTime() - a.getTime()) / 1000;
    return (d >= 0 ? '+' : '−') + Math.abs(d).toFixed(3) + ' s';
  }

  function label(text) { return String(text === null || text === undefined || text === '' ? '–' : text); }

  function safeClass(text) { return String(text || '').toLowerCase().replace(/[^a-z0-9_-]/g, ''); }

  function stateLabel(call) {
    if (call.ended_at) return call.disposition || 'ended';
    return STATE_LABELS[call.state] || call.state || 'live';
  }

  function campaignColor(name) {
    if (name === null || name === undefined) return NO_CAMPAIGN_COLOR;
    if (!state.campaignColors.has(name)) {
      state.campaignColors.set(name, PALETTE[state.campaignColors.size % PALETTE.length]);
    }
    return state.campaignColors.get(name);
  }

  function badges(call) {
    var out = BADGES.filter(function (b) { return Number(call[b[0]]) === 1; }).map(function (b) {
      return h('span', {class: 'badge badge-' + safeClass(b[1])}, b[1]);
    });
    if (call.dtmf_digits) out.push(h('span', {class: 'badge badge-dtmf', title: 'DTMF digits'}, 'dtmf ' + call.dtmf_digits));
    return out.length ? out : [h('span', {class: 'muted'}, '–')];
  }

  function score(call) {
    for (var i = 0; i < SCORE_FIELDS.length; i++) {
      var key = SCORE_FIELDS[i];
      if (call[key] !== null && call[key] !== undefined) {
        var cls = 'score' + (key === 'score1' && call.score1_color ? ' score-' + safeClass(call.score1_color) : '');
        return h('span', {class: cls, title: key.replace('_', ' ')}, String(call[key]));
      }
    }
    return h('span', {class: 'muted'}, '–');
  }

  function dispositionBadge(call) {
    var text = stateLabel(call);
    var cls = call.ended_at ? 'disp disp-' + safeClass(call.disposition) : 'disp disp-live';
    return h('span', {class: cls}, text);
  }

  // --- the API ------------------------------------------------------------------------------------------

  function ApiError(status, message) { this.status = status; this.message = message; }

  async function api(path, options) {
    options = options || {};
    var resp = await fetch(path, {
      method: options.method || 'GET',
      headers: {'Authorization': 'Bearer ' + state.token, 'Accept': 'application/json'},
      cache: 'no-store', credentials: 'omit'
    });
    if (resp.status === 401) {
      signOut('The token was refused. Sign in again.');
      throw new ApiError(401, 'unauthorised');
    }
    var body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || ('HTTP ' + resp.status));
    return body;
  }

  function showError(container, err) {
    fill(container, h('p', {class: 'error', role: 'alert'}, 'Could not load: ' + (err && err.message ? err.message : err)));
  }

  // --- sign-in ------------------------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    var input = $('token');
    var token = input.value.trim();
    var error = $('signin-error');
    error.hidden = true;
    if (!token) {
      error.textContent = 'Enter the admin token.';
      error.hidden = false;
      input.focus();
      return;
    }
    $('signin-submit').disabled = true;
    try {
      var resp = await fetch('/api/v1/stats/today', {headers: {'Authorization': 'Bearer ' + token}, cache: 'no-store'});
      if (resp.status === 401) throw new Error('That token was refused.');
      if (!resp.ok) throw new Error('The server answered ' + resp.status + '.');
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = '';
      start(token);
    } catch (e) {
      error.textContent = e.message || String(e);
      error.hidden = false;
      input.focus();
    } finally {
      $('signin-submit').disabled = false;
    }
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    closeLive();
    clearTimeout(state.reconnectTimer);
    state.timers.forEach(clearInterval);
    state.timers = [];
    state.calls.clear();
    state.live.clear();
    setIndicator('off', 'Signed out');
    $('signout').hidden = true;
    $('dashboard-view').hidden = true;
    $('call-view').hidden = true;
    $('signin-view').hidden = false;
    var error = $('signin-error');
    error.hidden = !message;
    error.textContent = message || '';
    $('token').focus();
  }

  function start(token) {
    state.token = token;
    $('signin-view').hidden = true;
    $('signout').hidden = false;
    route();
    connectLive();
    state.timers.push(setInterval(tick, 1000));
    state.timers.push(setInterval(function () { loadStats(); loadHourly(); }, STATS_EVERY_MS));
    state.timers.push(setInterval(loadPools, POOLS_EVERY_MS));
  }

  // --- the live stream ----------------------------------------------------------------------------------

  var INDICATOR_TEXT = {off: 'Signed out', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…'};

  function setIndicator(kind, text) {
    var el = $('live-indicator');
    el.dataset.state = kind;
    el.querySelector('.label').textContent = text || INDICATOR_TEXT[kind] || kind;
  }

  function closeLive() {
    if (state.es) {
      state.es.close();
      state.es = null;
    }
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    if (!state.token) return;
    var delay = Math.min(15000, 1000 * Math.pow(2, state.retries)) * (0.75 + Math.random() / 2);
    state.retries += 1;
    setIndicator('reconnecting');
    state.reconnectTimer = setTimeout(connectLive, delay);
  }

  async function connectLive() {
    closeLive();
    if (!state.token) return;
    setIndicator(state.retries ? 'reconnecting' : 'connecting');
    var ticket;
    try {
      ticket = (await api('/api/v1/live/ticket', {method: 'POST'})).ticket;
    } catch (e) {
      if (e.status === 401) return;
      if (!state.calls.size) loadAll();  // show what there is while the stream is unavailable
      scheduleReconnect();
      return;
    }
    var es = new EventSource('/api/v1/live?ticket=' + encodeURIComponent(ticket));
    state.es = es;
    es.addEventListener('hello', function () {
      state.retries = 0;
      setIndicator('live');
      loadAll();  // events from now on come live; load everything up to now
    });
    es.addEventListener('call', function (m) { onCallEvent(JSON.parse(m.data)); });
    es.addEventListener('resync', function () { loadAll(); });
    es.addEventListener('bye', function () {
      if (state.es !== es) return;
      closeLive();
      scheduleReconnect();
    });
    es.onerror = function () {
      if (state.es !== es) return;
      // the ticket was single-use: take a new one rather than letting EventSource retry with it
      closeLive();
      scheduleReconnect();
    };
  }

  function newer(a, b) {  // is summary a at least as recent as b?
    return !b || !b.updated_at || !a.updated_at || a.updated_at >= b.updated_at;
  }

  function remember(call, live) {
    var known = state.calls.get(call.id);
    if (!newer(call, known)) return known;
    var merged = Object.assign({}, known || {}, call);
    state.calls.set(call.id, merged);
    if (!merged.ended_at) {
      state.live.set(merged.id, {call: merged, endedAt: null});
    } else if (live && !known && !state.live.has(merged.id)) {
      // first seen already over (a call refused before answer): shown briefly all the same
      state.live.set(merged.id, {call: merged, endedAt: Date.now()});
    } else if (state.live.has(merged.id)) {
      var entry = state.live.get(merged.id);
      entry.call = merged;
      if (!entry.endedAt) entry.endedAt = Date.now();
    }
    return merged;
  }

  function pruneCalls() {
    if (state.calls.size <= KEEP_CALLS) return;
    var ordered = sortedCalls();
    ordered.slice(KEEP_CALLS).forEach(function (c) { if (c.ended_at) state.calls.delete(c.id); });
  }

  function onCallEvent(event) {
    if (!event || !event.call || !ID_RE.test(event.call.id)) return;
    remember(event.call, true);
    pruneCalls();
    renderLive();
    renderRecent();
    refreshStatsSoon();
    if (state.callId === event.call.id) reloadCallSoon();
  }

  // --- loading ------------------------------------------------------------------------------------------

  function loadAll() {
    return Promise.all([loadRecent(), loadStats(), loadHourly(), loadPools()]);
  }

  async function loadRecent() {
    try {
      var page = await api('/api/v1/calls?limit=' + RECENT_LIMIT);
      page.calls.forEach(function (c) { remember(c, false); });
      // calls shown as live that the server no longer has open (missed while disconnected)
      state.live.forEach(function (entry, id) {
        var c = state.calls.get(id);
        if (c && c.ended_at && !entry.endedAt) entry.endedAt = Date.now();
      });
      renderLive();
      renderRecent();
    } catch (e) {
      if (e.status !== 401) showError($('recent-body').parentNode.parentNode, e);
    }
  }

  var statsTimer = null;
  function refreshStatsSoon() {  // at most one reload per 300 ms however many events arrive
    if (statsTimer) return;
    statsTimer = setTimeout(function () {
      statsTimer = null;
      loadStats();
      loadHourly();
      loadPools();
    }, 300);
  }

  function localMidnight() {
    var d = new Date();
    d.setHours(0, 0, 0, 0);
    return d.toISOString();
  }

  async function loadStats() {
    try {
      var s = await api('/api/v1/stats/today?since=' + encodeURIComponent(localMidnight()));
      $('stat-calls').textContent = String(s.calls);
      var done = Object.keys(s.by_disposition).map(function (k) { return s.by_disposition[k] + ' ' + k; });
      if (s.active) done.push(s.active + ' in progress');
      $('stat-calls-sub').textContent = done.length ? done.join(' · ') : 'none yet';
      $('stat-answered').textContent = String(s.answered);
      $('stat-answered-sub').textContent = s.calls ? Math.round(100 * s.answered / s.calls) + '% reached the business' : '';
      $('stat-active').textContent = String(s.active);
      $('stat-spam').textContent = String(s.spam_blocked);
      $('stat-spam-sub').textContent = s.rejected + ' rejected before answer · ' + s.marked_spam + ' marked spam';
      renderCampaigns(s.by_campaign);
    } catch (e) {
      if (e.status !== 401) $('stat-calls-sub').textContent = 'Could not load: ' + e.message;
    }
  }

  async function loadHourly() {
    try {
      renderHourly(await api('/api/v1/stats/hourly?hours=24'));
    } catch (e) {
      if (e.status !== 401) showError($('hourly-chart'), e);
    }
  }

  async function loadPools() {
    try {
      renderPools((await api('/api/v1/pools')).pools);
    } catch (e) {
      if (e.status === 404) fill($('pools'), h('p', {class: 'empty'}, 'No number pools in this configuration.'));
      else if (e.status !== 401) showError($('pools'), e);
    }
  }

  // --- rendering: dashboard -----------------------------------------------------------------------------

  function sortedCalls() {
    var all = [];
    state.calls.forEach(function (c) { all.push(c); });
    all.sort(function (a, b) {
      if (a.arrived_at === b.arrived_at) return a.id < b.id ? 1 : -1;
      return a.arrived_at < b.arrived_at ? 1 : -1;
    });
    return all;
  }

  function callLink(call, text) {
    return h('a', {href: '#/calls/' + encodeURIComponent(call.id), class: 'call-link'}, text);
  }

  function renderRecent() {
    var body = $('recent-body');
    var calls = sortedCalls().slice(0, RECENT_LIMIT);
    clear(body);
    calls.forEach(function (c) {
      body.appendChild(h('tr', {dataset: {callId: c.id, disposition: c.disposition || '', state: c.state || ''},
                                class: c.ended_at ? '' : 'is-live'},
        h('td', {class: 'nowrap'}, callLink(c, formatTime(c.arrived_at))),
        h('td', {class: 'nowrap'}, formatNumber(c.caller_number),
          c.caller_name ? h('span', {class: 'sub-line'}, c.caller_name) : null),
        h('td', {class: 'nowrap'}, formatNumber(c.dialed_number)),
        h('td', null, label(c.campaign)),
        h('td', null, label(c.source || c.attribution_method)),
        h('td', null, dispositionBadge(c)),
        h('td', {class: 'num'}, formatSeconds(c.talk_seconds)),
        h('td', {class: 'num'}, score(c)),
        h('td', {class: 'badges'}, badges(c))));
    });
    $('recent-empty').hidden = calls.length > 0;
  }

  function renderLive() {
    var list = $('live-calls');
    var now = Date.now();
    state.live.forEach(function (entry, id) {
      if (entry.endedAt && now - entry.endedAt > LINGER_MS) state.live.delete(id);
    });
    var entries = [];
    state.live.forEach(function (entry) { entries.push(entry); });
    entries.sort(function (a, b) { return a.call.arrived_at < b.call.arrived_at ? 1 : -1; });
    // update in place, so screen readers announce only what changed
    var existing = {};
    Array.prototype.forEach.call(list.children, function (li) { existing[li.dataset.callId] = li; });
    entries.forEach(function (entry, i) {
      var c = entry.call;
      var li = existing[c.id] || h('li', {dataset: {callId: c.id}});
      delete existing[c.id];
      li.dataset.caller = c.caller_number || '';
      li.dataset.state = c.state || '';
      li.dataset.ended = c.ended_at ? 'true' : 'false';
      li.dataset.disposition = c.disposition || '';
      li.className = 'live-call' + (c.ended_at ? ' is-ended' : '');
      fill(li,
        h('div', {class: 'live-main'},
          callLink(c, formatNumber(c.caller_number)),
          h('span', {class: 'live-to'}, '→ ' + formatNumber(c.dialed_number) + (c.campaign ? ' · ' + c.campaign : ''))),
        h('div', {class: 'live-side'},
          dispositionBadge(c),
          h('span', {class: 'elapsed', dataset: {since: c.arrived_at}},
            c.ended_at ? formatSeconds(c.total_seconds) : elapsedSince(c.arrived_at)),
          h('span', {class: 'badges'}, badges(c).filter(function (b) { return b.className !== 'muted'; }))));
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    Object.keys(existing).forEach(function (id) { list.removeChild(existing[id]); });
    $('live-empty').hidden = entries.length > 0;
  }

  function tick() {
    var lingering = false;
    state.live.forEach(function (entry) { if (entry.endedAt) lingering = true; });
    if (lingering) renderLive();
    Array.prototype.forEach.call(document.querySelectorAll('.live-call:not(.is-ended) .elapsed'), function (el) {
      el.textContent = elapsedSince(el.dataset.since);
    });
  }

  function renderCampaigns(rows) {
    var box = $('campaigns-table');
    if (!rows.length) { fill(box, h('p', {class: 'empty'}, 'No calls today yet.')); return; }
    fill(box, h('table', {class: 'compact'},
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Campaign'), h('th', {scope: 'col', class: 'num'}, 'Calls'),
        h('th', {scope: 'col', class: 'num'}, 'Answered'), h('th', {scope: 'col', class: 'num'}, 'Spam blocked'))),
      h('tbody', null, rows.map(function (r) {
        return h('tr', null,
          h('th', {scope: 'row'}, h('span', {class: 'swatch', 'aria-hidden': 'true', dataset: {color: campaignColor(r.campaign)}}),
            r.campaign === null ? '(no campaign)' : r.campaign),
          h('td', {class: 'num'}, String(r.calls)), h('td', {class: 'num'}, String(r.answered)),
          h('td', {class: 'num'}, String(r.spam_blocked)));
      }))));
    paintSwatches(box);
  }

  function paintSwatches(root) {
    Array.prototype.forEach.call(root.querySelectorAll('.swatch[data-color]'), function (el) {
      el.style.backgroundColor = el.dataset.color;  // CSSOM, allowed by the page's style-src 'self'
    });
  }

  function hourLabel(iso) {
    var t = parseTime(iso);
    return t ? t.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'}) : '';
  }

  function renderHourly(data) {
    var chart = $('hourly-chart');
    var W = 640, H = 240, left = 34, right = 26, top = 12, bottom = 30;
    var n = data.hours.length;
    var max = Math.max(1, Math.max.apply(null, data.totals));
    var step = max <= 4 ? 1 : Math.ceil(max / 4);
    var yMax = Math.ceil(max / step) * step;
    var plotW = W - left - right, plotH = H - top - bottom;
    var slot = plotW / n, barW = Math.max(2, slot * 0.7);
    var total = data.totals.reduce(function (a, b) { return a + b; }, 0);
    var root = svg('svg', {viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-labelledby': 'hourly-svg-title hourly-svg-desc',
                           class: 'hourly', preserveAspectRatio: 'xMidYMid meet'},
      svg('title', {id: 'hourly-svg-title'}, 'Calls per hour by campaign, last ' + n + ' hours'),
      svg('desc', {id: 'hourly-svg-desc'}, total + ' calls in total; ' +
        (data.series.map(function (s) { return (s.campaign === null ? 'no campaign' : s.campaign) + ' ' + s.total; }).join(', ') || 'none')));
    for (var v = 0; v <= yMax; v += step) {
      var y = top + plotH - (v / yMax) * plotH;
      root.appendChild(svg('line', {x1: left, x2: W - right, y1: y, y2: y, class: 'gridline'}));
      root.appendChild(svg('text', {x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis'}, String(v)));
    }
    for (var i = 0; i < n; i++) {
      var x = left + i * slot + (slot - barW) / 2;
      var parts = data.series.filter(function (s) { return s.counts[i] > 0; });
      var tip = hourLabel(data.hours[i]) + ': ' + data.totals[i] + ' call' + (data.totals[i] === 1 ? '' : 's') +
        (parts.length ? ' (' + parts.map(function (s) { return (s.campaign === null ? 'no campaign' : s.campaign) + ' ' + s.counts[i]; }).join(', ') + ')' : '');
      var g = svg('g', {class: 'bar', dataset: {hour: data.hours[i], total: data.totals[i]}}, svg('title', null, tip));
      var base = top + plotH;
      data.series.forEach(function (s) {
        var c = s.counts[i];
        if (!c) return;
        var bh = (c / yMax) * plotH;
        base -= bh;
        g.appendChild(svg('rect', {x: x, y: base, width: barW, height: bh, fill: campaignColor(s.campaign),
                                   dataset: {campaign: s.campaign === null ? '' : s.campaign, count: c}}));
      });
      // a transparent hit area so the tooltip works on empty hours too
      g.appendChild(svg('rect', {x: left + i * slot, y: top, width: slot, height: plotH, class: 'hit'}));
      root.appendChild(g);
      var every = n > 12 ? Math.ceil(n / 8) : 1;
      if ((n - 1 - i) % every === 0) {
        root.appendChild(svg('text', {x: left + i * slot + slot / 2, y: H - 10, 'text-anchor': 'middle', class: 'axis'},
          hourLabel(data.hours[i])));
      }
    }
    root.appendChild(svg('line', {x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: 'baseline'}));
    fill(chart, root);

    var legend = $('hourly-legend');
    fill(legend, data.series.map(function (s) {
      return h('li', null, h('span', {class: 'swatch', 'aria-hidden': 'true', dataset: {color: campaignColor(s.campaign)}}),
        (s.campaign === null ? '(no campaign)' : s.campaign) + ' — ' + s.total);
    }));
    if (!data.series.length) legend.appendChild(h('li', {class: 'muted'}, 'No calls in the last ' + n + ' hours.'));
    paintSwatches(legend);

    fill($('hourly-table'), h('table', {class: 'compact'},
      h('caption', {class: 'visually-hidden'}, 'Calls per hour by campaign'),
      h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Hour'),
        data.series.map(function (s) { return h('th', {scope: 'col', class: 'num'}, s.campaign === null ? '(no campaign)' : s.campaign); }),
        h('th', {scope: 'col', class: 'num'}, 'Total'))),
      h('tbody', null, data.hours.map(function (hour, j) {
        return h('tr', null, h('th', {scope: 'row'}, hourLabel(hour)),
          data.series.map(function (s) { return h('td', {class: 'num'}, String(s.counts[j])); }),
          h('td', {class: 'num'}, String(data.totals[j])));
      }))));
  }

  function segment(kind, count, of) {
    var el = h('span', {class: 'seg seg-' + kind, title: kind + ': ' + count});
    el.style.width = (of ? (100 * count / of) : 0) + '%';
    return el;
  }

  function renderPools(pools) {
    var box = $('pools');
    if (!pools.length) { fill(box, h('p', {class: 'empty'}, 'No number pools in this configuration.')); return; }
    fill(box, pools.map(function (p) {
      var alerts = (p.alerts || []).slice(0, 3);
      var body;
      if (p.mode === 'extension') {
        var used = p.extensions_in_use || 0, max = p.max_extension || 0;
        body = [
          h('div', {class: 'bar-track', role: 'img', 'aria-label': used + ' of ' + max + ' extensions in use'},
            segment('leased', used, max)),
          h('p', {class: 'sub'}, used + ' of ' + max + ' extensions in use on ' + formatNumber(p.number))];
      } else {
        var nums = p.numbers || {}, cap = Math.max(p.max_size || 0, p.size || 0, 1);
        var leased = nums.leased || 0, idle = nums.idle || 0, cool = nums.cooldown || 0;
        body = [
          h('div', {class: 'bar-track', role: 'img',
                    'aria-label': leased + ' leased, ' + idle + ' idle, ' + cool + ' cooling down, of ' + cap},
            segment('leased', leased, cap), segment('cooldown', cool, cap), segment('idle', idle, cap)),
          h('ul', {class: 'pool-legend'},
            h('li', null, h('span', {class: 'key key-leased', 'aria-hidden': 'true'}), 'leased ' + leased),
            h('li', null, h('span', {class: 'key key-cooldown', 'aria-hidden': 'true'}), 'cooldown ' + cool),
            h('li', null, h('span', {class: 'key key-idle', 'aria-hidden': 'true'}), 'idle ' + idle),
            h('li', {class: 'muted'}, 'max ' + label(p.max_size)))];
      }
      return h('article', {class: 'pool', dataset: {pool: p.name}},
        h('h3', null, p.name, h('span', {class: 'muted'}, ' · ' + label(p.campaign) + ' · ' + p.mode)),
        body,
        alerts.length ? h('ul', {class: 'alerts', 'aria-label': 'Alerts for ' + p.name}, alerts.map(function (a) {
          return h('li', {class: /overflow/.test(a.kind) ? 'alert alert-overflow' : 'alert'},
            h('strong', null, a.kind), ' ', a.message, ' ', h('span', {class: 'muted'}, formatTime(a.at)));
        })) : null);
    }));
  }

  // --- rendering: a call --------------------------------------------------------------------------------

  var callTimer = null;
  function reloadCallSoon() {
    clearTimeout(callTimer);
    callTimer = setTimeout(function () { if (state.callId) loadCall(state.callId, false); }, 300);
  }

  function dataText(data) {
    if (data === null || data === undefined) return '';
    if (typeof data !== 'object') return String(data);
    return Object.keys(data).filter(function (k) { return data[k] !== null && data[k] !== undefined; }).map(function (k) {
      var v = data[k];
      return k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : String(v));
    }).join(' · ');
  }

  function field(name, value) {
    return [h('dt', null, name), h('dd', null, value === null || value === undefined || value === '' ? '–' : value)];
  }

  async function loadCall(id, focus) {
    var body = $('call-body');
    try {
      var call = await api('/api/v1/calls/' + encodeURIComponent(id));
      if (state.callId !== id) return;
      remember(call, false);
      renderCall(call);
      body.dataset.loaded = 'true';
      if (focus) $('call-title').focus({preventScroll: true});
    } catch (e) {
      if (state.callId !== id || e.status === 401) return;
      body.dataset.loaded = 'error';
      $('call-title').textContent = e.status === 404 ? 'No such call' : 'Call';
      showError(body, e);
    }
  }

  function renderCall(c) {
    $('call-title').textContent = 'Call from ' + formatNumber(c.caller_number) + ' to ' + formatNumber(c.dialed_number);
    var view = $('call-view');
    view.dataset.callId = c.id;
    view.dataset.disposition = c.disposition || '';
    var reasons = Array.isArray(c.decision_reasons) ? c.decision_reasons.join('; ') : c.decision_reasons;
    var summary = h('dl', {class: 'facts'},
      field('Call id', h('code', null, c.id)),
      field('Arrived', formatTime(c.arrived_at, true)),
      field('Status', dispositionBadge(c)),
      field('Campaign', c.campaign),
      field('Destination', c.destination),
      field('Decision', c.decision ? c.decision + (reasons ? ' — ' + reasons : '') : null),
      field('Caller', formatNumber(c.caller_number) + (c.caller_name ? ' (' + c.caller_name + ')' : '')),
      field('Ring / talk / total', formatSeconds(c.ring_seconds) + ' / ' + formatSeconds(c.talk_seconds) + ' / ' + formatSeconds(c.total_seconds)),
      field('Hang-up', c.hangup_cause_text ? c.hangup_cause_text + ' (' + c.hangup_cause + ', ' + label(c.hangup_side) + ')' : null),
      field('Source', [c.source, c.medium, c.ad_campaign, c.keyword].filter(Boolean).join(' / ') || null),
      field('Attribution', c.attribution_method ? c.attribution_method + (c.attribution_confidence ? ' (' + c.attribution_confidence + ')' : '') : null),
      field('Score', score(c)),
      field('Detections', badges(c)),
      c.transcript ? field('Transcript', c.transcript) : null,
      c.conversion_name || c.converted_at ? field('Conversion', [c.conversion_name, c.conversion_value, c.conversion_currency].filter(function (x) { return x !== null && x !== undefined; }).join(' ')) : null);

    var events = c.events || [];
    var timeline = h('ol', {class: 'timeline', id: 'call-timeline'}, events.map(function (e) {
      return h('li', {dataset: {kind: e.kind}, class: 'tl-' + safeClass(e.kind)},
        h('time', {datetime: e.at, title: formatTime(e.at, true)}, offsetFrom(c.arrived_at, e.at)),
        h('span', {class: 'tl-kind'}, e.kind.replace(/_/g, ' ')),
        e.data ? h('span', {class: 'tl-data'}, dataText(e.data)) : null);
    }));

    var legs = c.legs || [];
    var legsTable = h('table', {class: 'compact', id: 'call-legs'},
      h('thead', null, h('tr', null, ['Role', 'Destination', 'Created', 'Answered', 'Ended', 'Dial status', 'Hang-up'].map(function (t) {
        return h('th', {scope: 'col'}, t);
      }))),
      h('tbody', null, legs.map(function (l) {
        return h('tr', {dataset: {role: l.role}},
          h('td', null, l.role), h('td', null, label(l.destination)),
          h('td', null, offsetFrom(c.arrived_at, l.created_at)), h('td', null, offsetFrom(c.arrived_at, l.answered_at) || '–'),
          h('td', null, offsetFrom(c.arrived_at, l.ended_at) || '–'), h('td', null, label(l.dial_status)),
          h('td', null, l.hangup_cause_text ? l.hangup_cause_text + ' (' + l.hangup_cause + ')' : '–'));
      })));

    var detections = c.detections || [];
    var detectionsBlock = detections.length ? h('table', {class: 'compact', id: 'call-detections'},
      h('thead', null, h('tr', null, ['At', 'Leg', 'Detector', 'Kind', 'Start', 'Duration', 'Details'].map(function (t) {
        return h('th', {scope: 'col'}, t);
      }))),
      h('tbody', null, detections.map(function (d) {
        return h('tr', {dataset: {kind: d.kind}},
          h('td', null, offsetFrom(c.arrived_at, d.at)), h('td', null, d.leg), h('td', null, d.source),
          h('td', null, d.kind), h('td', {class: 'num'}, formatSeconds(d.start_s)),
          h('td', {class: 'num'}, formatSeconds(d.duration_s)), h('td', null, dataText(d.details)));
      }))) : h('p', {class: 'empty'}, 'No detections on this call.');

    fill($('call-body'),
      h('div', {class: 'grid grid-call'},
        h('section', {class: 'panel', 'aria-labelledby': 'call-summary-title'},
          h('h2', {id: 'call-summary-title'}, 'Summary'), summary),
        h('section', {class: 'panel', 'aria-labelledby': 'call-timeline-title'},
          h('h2', {id: 'call-timeline-title'}, 'Timeline'),
          events.length ? timeline : h('p', {class: 'empty'}, 'No events.'))),
      h('section', {class: 'panel', 'aria-labelledby': 'call-legs-title'},
        h('h2', {id: 'call-legs-title'}, 'Legs'), h('div', {class: 'table-wrap'}, legsTable)),
      h('section', {class: 'panel', 'aria-labelledby': 'call-detections-title'},
        h('h2', {id: 'call-detections-title'}, 'Detections'), h('div', {class: 'table-wrap'}, detectionsBlock)));
  }

  // --- routing ------------------------------------------------------------------------------------------

  function route() {
    if (!state.token) return;
    var match = /^#\/calls\/(.+)$/.exec(location.hash);
    var id = null;
    if (match) {
      try { id = decodeURIComponent(match[1]); } catch (e) { id = null; }
    }
    if (id && ID_RE.test(id)) {
      state.callId = id;
      $('dashboard-view').hidden = true;
      $('call-view').hidden = false;
      $('call-view').dataset.callId = id;
      $('call-body').dataset.loaded = 'false';
      $('call-title').textContent = 'Call';
      fill($('call-body'), h('p', {class: 'empty'}, 'Loading…'));
      document.title = 'Call ' + id + ' · Ringpool';
      window.scrollTo(0, 0);
      loadCall(id, true);
    } else {
      var fromCall = state.callId !== null;
      state.callId = null;
      $('call-view').hidden = true;
      $('dashboard-view').hidden = false;
      document.title = 'Ringpool';
      if (fromCall) {
        window.scrollTo(0, 0);
        $('main').focus({preventScroll: true});
      }
    }
  }

  // --- start --------------------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', function () {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', function () { signOut(''); });
    window.addEventListener('hashchange', route);
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token);
    else signOut('');
    document.documentElement.dataset.ready = 'true';
  });
})();
