/* Ringpool number insertion (docs/attribution.md). Plain ES2017, no build step. Usage:
 * <script async src="https://TRACKER/t.js" data-pool="POOL" data-key="KEY" data-number="+1 555 010 0001"></script> */
(() => {
  'use strict';
  const W = window, D = document, NF = W.NodeFilter, TYPE = 'text/plain;charset=UTF-8';
  const PARAMS = 'utm_source utm_medium utm_campaign utm_term utm_content gclid fbclid msclkid keyword p1 p2 p3';
  const SKIP = /^(SCRIPT|STYLE|NOSCRIPT|TEMPLATE|TEXTAREA|INPUT|SELECT|OPTION)$/;
  const ORIG = 'data-ringpool-original'; // on each element whose text we swapped: its original text
  const HREF = 'data-ringpool-href'; // on each tel: link we changed: its original href
  const MARKED = `[data-ringpool-number],.ringpool-number,[${ORIG}]`;
  const TEL = 'a[href^="tel:" i]';
  const SEP = '[\\s.\\-\\u2010-\\u2015()]{0,3}'; // what may sit between digits
  let cfg, lease = null, timer = 0, inflight = null, watching = false;

  // Text as the server accepts it: no control characters, bounded length.
  const clip = (v, n) => String(v).replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, n);
  const guard = (fn) => function () { try { return fn.apply(this, arguments); } catch (e) { report(e); } };
  function report(e) {
    D.documentElement.dataset.ringpool = lease ? 'ready' : 'error'; // a failed renew keeps the swap
    console.warn('ringpool:', (e && e.message) || e);
  }

  // "+1 555 010 0001" -> {cc: '1', nat: '5550100001'}; outside +1 all digits stay in nat.
  function parse(text) {
    const d = text.replace(/\D/g, '');
    if (d.length === 11 && d[0] === '1') return { cc: '1', nat: d.slice(1) };
    if (d.length === 10 && !/^\s*\+/.test(text)) return { cc: '1', nat: d };
    return d.length > 4 ? { cc: '', nat: d } : null;
  }

  function config() {
    const s = D.currentScript || D.querySelector('script[src*="/t.js"][data-pool]');
    if (!s || !s.dataset.pool) throw new Error('no <script data-pool>');
    const src = new URL(s.src, location.href), nums = (s.dataset.number || '').split(',').map(parse).filter(Boolean);
    const alts = nums.map((n) => (n.cc ? `(?:\\+?${n.cc}${SEP})?\\(?` : '\\+?') + n.nat.split('').join(SEP));
    return {
      api: src.origin + src.pathname.replace(/\/t\.js$/, ''), pool: s.dataset.pool, key: s.dataset.key || '',
      tels: nums.reduce((all, n) => all.concat(n.nat, n.cc + n.nat), []),
      // Group 1 is the character before the number (ES2017 has no lookbehind).
      re: alts.length ? new RegExp(`(^|[^\\d+])(${alts.join('|')})(?!\\d)`, 'g') : null,
    };
  }

  // Swapping
  function each(root, selector, fn) {
    if (root.nodeType !== 1) return;
    if (root.matches(selector)) fn(root);
    root.querySelectorAll(selector).forEach(fn);
  }
  const isDefaultTel = (href) => cfg.tels.indexOf(href.slice(4).split(/[,;]|ext/i)[0].replace(/\D/g, '')) >= 0;
  const skipped = (el) => SKIP.test(el.tagName) || el.hasAttribute(ORIG) || el.hasAttribute('data-ringpool-ignore') ||
    el.isContentEditable;

  function swapTextNode(node) {
    const text = node.nodeValue, re = cfg.re, frag = D.createDocumentFragment();
    let m, last = 0;
    re.lastIndex = 0;
    while ((m = re.exec(text))) {
      const at = m.index + m[1].length, span = D.createElement('span');
      span.className = 'ringpool-swapped';
      span.setAttribute(ORIG, m[2]);
      span.textContent = lease.display;
      frag.append(text.slice(last, at), span);
      last = at + m[2].length;
    }
    if (!last) return;
    frag.append(text.slice(last));
    node.parentNode.replaceChild(frag, node);
  }

  function swapTexts(root) {
    const el = root.nodeType === 3 ? root.parentElement : root;
    if (!cfg.re || !el || el.closest(`[${ORIG}],[data-ringpool-ignore]`) || skipped(el)) return;
    cfg.re.lastIndex = 0;
    if (!cfg.re.test(root.textContent)) return; // cheap check before walking
    let nodes = [root];
    if (root.nodeType !== 3) {
      const walker = D.createTreeWalker(root, NF.SHOW_ELEMENT | NF.SHOW_TEXT, { acceptNode: (n) =>
        (n.nodeType === 3 ? NF.FILTER_ACCEPT : skipped(n) ? NF.FILTER_REJECT : NF.FILTER_SKIP) });
      nodes = [];
      while (walker.nextNode()) nodes.push(walker.currentNode);
    }
    nodes.forEach(swapTextNode); // after the walk: replacing nodes would derail the walker
  }

  function swap(root) {
    if (!lease || !root || !root.isConnected) return;
    each(root, MARKED, (el) => {
      if (!el.hasAttribute(ORIG)) el.setAttribute(ORIG, el.textContent);
      if (el.textContent !== lease.display) el.textContent = lease.display;
    });
    each(root, TEL, (a) => {
      const href = a.getAttribute(HREF) || a.getAttribute('href');
      if (!isDefaultTel(href) && !a.matches(MARKED)) return;
      a.setAttribute(HREF, href);
      a.setAttribute('href', lease.tel);
    });
    swapTexts(root);
  }

  // Single-page apps render late: swap what they add (debounced), ignoring our own changes.
  function watch() {
    let roots = new Set(), due = 0;
    const mo = new MutationObserver((records) => {
      records.forEach((r) => (r.type === 'characterData' ? roots.add(r.target)
        : r.addedNodes.forEach((n) => roots.add(n))));
      due = due || setTimeout(guard(flush), 50);
    });
    const observe = () => mo.observe(D.body, { childList: true, subtree: true, characterData: true });
    function flush() {
      const todo = roots;
      roots = new Set(); due = 0;
      mo.disconnect();
      try { todo.forEach(swap); } finally { observe(); }
    }
    observe();
  }

  // The visitor. The session token lives in localStorage, else in a first-party cookie.
  const cookie = () => `ringpool_${cfg.pool.replace(/[^\w-]/g, '_')}`;
  const cookies = () => { try { return D.cookie; } catch (e) { return ''; } }; // throws in sandboxed frames
  function loadToken() {
    let t;
    try { t = W.localStorage.getItem(`ringpool:${cfg.pool}`); } catch (e) { /* blocked */ }
    const m = t ? null : cookies().match(new RegExp(`(?:^|;\\s*)${cookie()}=([\\w-]*)`));
    t = t || (m && m[1]);
    return /^[\w-]{1,100}$/.test(t) ? t : undefined; // anything else was tampered with: a new session
  }
  function saveToken(token) {
    try { return W.localStorage.setItem(`ringpool:${cfg.pool}`, token); } catch (e) { /* blocked */ }
    const secure = location.protocol === 'https:' ? '; Secure' : '';
    const value = `${cookie()}=${encodeURIComponent(token)}; path=/; max-age=2592000; SameSite=Lax${secure}`;
    try { D.cookie = value; } catch (e) { /* no storage at all: the session lasts as long as the page */ }
  }

  function visit(token) {
    const body = { pool: cfg.pool, key: cfg.key, token, page: clip(location.href, 2048),
      referrer: /^https?:/.test(D.referrer) ? clip(D.referrer, 2048) : undefined,
      title: D.title ? clip(D.title, 300) : undefined }, vars = W.ringpoolVars;
    if (vars && typeof vars === 'object') {
      body.vars = {};
      Object.keys(vars).filter((k) => /^[\w.-]{1,40}$/.test(k) && vars[k] != null).slice(0, 20)
        .forEach((k) => { body.vars[k] = clip(vars[k], 200); });
      if (/^(replace|add|overwrite)$/.test(W.ringpoolVarsMode)) body.vars_mode = W.ringpoolVarsMode;
    }
    return body;
  }

  function sessionBody() {
    const q = new URLSearchParams(location.search), params = {}, s = W.screen || {};
    PARAMS.split(' ').forEach((k) => { if (q.get(k)) params[k] = clip(q.get(k), 200); });
    const ga = cookies().match(/(?:^|;\s*)_ga=GA\d+\.\d+\.(\d+\.\d+)(?:;|$)/); // GA1.1.XXXX.YYYY
    return Object.assign(visit(loadToken()), {
      params: Object.keys(params).length ? params : undefined, ga_client_id: ga ? ga[1] : undefined,
      device: { ua: clip(navigator.userAgent, 400), width: s.width, height: s.height,
        touch: navigator.maxTouchPoints > 0 || 'ontouchstart' in W },
    });
  }

  // Network: simple CORS requests (text/plain, no cookies), so never a preflight.
  async function post(path, body) {
    const ctl = new AbortController(), t = setTimeout(() => ctl.abort(), 5000);
    try {
      const r = await fetch(cfg.api + path, { method: 'POST', body: JSON.stringify(body), credentials: 'omit',
        headers: { 'Content-Type': TYPE }, signal: ctl.signal });
      const data = r.status === 204 ? null : await r.json().catch(() => ({}));
      const error = `${path}: ${r.status} ${(data && data.error) || ''}`;
      if (!r.ok) throw Object.assign(new Error(error), { status: r.status });
      return data;
    } finally { clearTimeout(t); }
  }
  // Outlives the page (a tel: click, a closed tab); nobody reads the answer.
  const beacon = (path, body) => navigator.sendBeacon(cfg.api + path, new Blob([JSON.stringify(body)], { type: TYPE }));

  // The lease
  function accept(next) {
    if (!next || !next.token || !next.display || !next.tel) throw new Error('bad lease');
    const changed = !lease || next.display !== lease.display || next.tel !== lease.tel;
    lease = next;
    saveToken(next.token);
    if (changed) {
      const run = guard(() => {
        swap(D.body);
        if (!watching) watch(), watching = true;
        D.documentElement.dataset.ringpool = 'ready';
      });
      if (D.readyState === 'loading') D.addEventListener('DOMContentLoaded', run); else run();
    }
    schedule(next.renew_every);
  }
  function schedule(seconds) {
    clearTimeout(timer);
    if (D.visibilityState !== 'hidden') timer = setTimeout(guard(refresh), Math.max(+seconds || 60, 1) * 1000);
  }
  // Starts or renews the session, one request at a time. Resolves to the lease; never rejects.
  function refresh() {
    inflight = inflight || Promise.resolve()
      .then(() => (lease ? post('/t/v1/pageview', visit(lease.token)) : post('/t/v1/sessions', sessionBody())))
      .then(accept, (e) => {
        report(e);
        const status = e && e.status; // retry network errors, rate limits and server errors, not refusals
        if (!status || status === 429 || status >= 500) schedule(lease && lease.renew_every);
      }).catch(report).then(() => { inflight = null; return lease; });
    return inflight;
  }

  function onClick(e) {
    const t = e.target, el = t && t.closest && (t.closest(TEL) || t.closest(MARKED));
    if (!el || !lease) return;
    const label = el.getAttribute('data-ringpool-element') || el.id || el.className;
    const element = `${el.tagName.toLowerCase()}${label ? `[${label}]` : ''} ${el.textContent.replace(/\s+/g, ' ')}`;
    beacon('/t/v1/click', { pool: cfg.pool, key: cfg.key, token: lease.token, element: clip(element.trim(), 120) });
  }

  try {
    cfg = config();
    if (W.Ringpool && W.Ringpool.pool === cfg.pool) return; // the tag is on the page twice
    W.Ringpool = { pool: cfg.pool, get lease() { return lease; }, refresh, swap: () => swap(D.body) };
    D.addEventListener('click', guard(onClick), true);
    const hidden = () => D.visibilityState === 'hidden';
    D.addEventListener('visibilitychange', guard(() => (hidden() ? clearTimeout(timer) : refresh())));
    W.addEventListener('pageshow', guard((e) => e.persisted && refresh())); // back from the bfcache
    W.addEventListener('pagehide', guard(() => lease && beacon('/t/v1/pageview', visit(lease.token))));
    refresh();
  } catch (e) { report(e); }
})();
