// chatws browser chat page.
//
// Speaks two wire formats and picks its renderer from what the server sends:
//  - "chatws.v1" (preferred): a `hello` with the room's history on join, then
//    one `msg` per new message (deduplicated by id) and join/leave presence;
//    a reconnect asks for what it missed (?since=<last id>): the hello then
//    carries only that, or says "reset" and carries the history; a `dropped`
//    notice (this page fell behind and the server skipped messages for it)
//    reconnects at once from the last id before the hole, so the list never
//    keeps a silent gap;
//  - "json" (classic): a full `{"msg": [...]}` snapshot, newest first, on join
//    and after every new message.
// User data only ever reaches the DOM through textContent, never as HTML.
'use strict';

(() => {
  // ------------------------------------------------------------ settings
  const RECONNECT_BASE_MS = 500;
  const RECONNECT_FACTOR = 2;
  const RECONNECT_CAP_MS = 10000;
  const CONNECT_TIMEOUT_MS = 10000;  // a handshake that hangs counts as a failure
  const MAX_RENDERED = 500;          // v1 deltas would otherwise grow the list forever
  const ERROR_SHOW_MS = 6000;
  const RESYNC_MIN_INTERVAL_MS = 5000;  // a page that stays too slow resyncs at most this often
  const NAME_KEY = 'chatws.name';
  // The server's rule for room names (core/chat/room_path.h); anything else
  // would be refused at the handshake, so the page says so instead of retrying.
  const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

  const params = new URLSearchParams(window.location.search);
  const room = normaliseRoom(params.get('room'));
  const protocols = protocolsFor(params.get('proto'));
  const wsUrl = socketUrl(room);
  const roomValid = room === '' || ROOM_NAME.test(room);

  // ------------------------------------------------------------ elements
  const $ = (id) => document.getElementById(id);
  const els = {
    roomName: $('room-name'),
    roomHash: document.querySelector('.room-hash'),
    roomHint: $('room-hint'),
    members: $('members'),
    memberCount: $('member-count'),
    presence: $('presence'),
    presenceText: $('presence-text'),
    scroller: document.querySelector('.conversation'),
    list: $('messages'),
    empty: $('empty'),
    error: $('error'),
    form: $('composer'),
    name: $('name'),
    text: $('text'),
    send: $('send'),
  };

  // ------------------------------------------------------------ URL options
  // "?room=name" selects /rooms/name; no room (or "/") is the default room "/".
  function normaliseRoom(raw) {
    const r = (raw || '').trim();
    return r === '/' ? '' : r;
  }

  // "?proto=json" or "?proto=chatws.v1" forces one format (used by tests and
  // for talking to servers that only know the classic one).
  function protocolsFor(raw) {
    if (raw === 'json') return ['json'];
    if (raw === 'chatws.v1' || raw === 'v1') return ['chatws.v1'];
    return ['chatws.v1', 'json'];
  }

  function socketUrl(roomName) {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = roomName ? '/rooms/' + encodeURIComponent(roomName) : '/';
    // A server in token mode (--auth-secret) admits ?token=... (or the
    // chatws_token cookie, which the browser sends by itself): pass it on.
    const token = params.get('token');
    const query = token ? '?token=' + encodeURIComponent(token) : '';
    return scheme + '//' + window.location.host + path + query;
  }

  // ------------------------------------------------------------ name storage
  // localStorage can be unavailable (privacy modes, sandboxed frames): the
  // page must still work, just without remembering the name.
  function loadName() {
    try { return window.localStorage.getItem(NAME_KEY) || ''; } catch (e) { return ''; }
  }
  function saveName(name) {
    try { window.localStorage.setItem(NAME_KEY, name); } catch (e) { /* not persisted */ }
  }

  // ------------------------------------------------------------ rendering
  const timeShort = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const timeDated = new Intl.DateTimeFormat(undefined,
    { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const timeFull = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

  // Only well-formed entries are rendered; anything else is dropped quietly
  // rather than shown half-broken.
  function validMessage(m) {
    return m !== null && typeof m === 'object' &&
      typeof m.user === 'string' && typeof m.text === 'string' &&
      Number.isFinite(m.time);
  }

  function messageElement(m) {
    const li = document.createElement('li');
    li.className = 'msg';
    const key = idKey(m);
    if (key !== null) li.dataset.id = key;
    if (m.user === els.name.value.trim()) li.classList.add('mine');

    const meta = document.createElement('div');
    meta.className = 'meta';
    const user = document.createElement('span');
    user.className = 'user';
    user.textContent = m.user;
    const when = new Date(m.time);
    const time = document.createElement('time');
    time.className = 'time';
    time.dateTime = when.toISOString();
    time.title = timeFull.format(when);
    const today = new Date().toDateString() === when.toDateString();
    time.textContent = (today ? timeShort : timeDated).format(when);
    meta.append(user, time);

    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = m.text;

    li.append(meta, text);
    return li;
  }

  const seenIds = new Set();  // v1 ids currently rendered, for deduplication
  let lastId = null;          // the newest v1 id seen

  function noteId(m) {
    if (Number.isSafeInteger(m.id) && m.id >= 0 && (lastId === null || m.id > lastId)) lastId = m.id;
  }

  // Ids compared as strings: the same key the element carries in data-id.
  function idKey(m) {
    return m.id === undefined || m.id === null ? null : String(m.id);
  }

  function nearBottom() {
    const s = els.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  // Follow the conversation while the reader is at the bottom, also when the
  // window is resized (phone rotation, keyboard); leave them alone if they
  // scrolled up to read.
  let following = true;
  els.scroller.addEventListener('scroll', () => { following = nearBottom(); }, { passive: true });
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      if (following) els.scroller.scrollTop = els.scroller.scrollHeight;
    }).observe(els.scroller);
  }

  function afterListChange(stickToBottom) {
    els.empty.hidden = els.list.childElementCount > 0;
    if (stickToBottom) els.scroller.scrollTop = els.scroller.scrollHeight;
  }

  // Replace the whole list (v1 hello, classic snapshot). `messages` are oldest
  // first. Counted in data-generation so a resync is observable.
  function replaceAll(messages) {
    const stick = following;
    const frag = document.createDocumentFragment();
    seenIds.clear();
    lastId = null;
    for (const m of messages.slice(-MAX_RENDERED)) {
      if (!validMessage(m)) continue;
      noteId(m);
      const key = idKey(m);
      if (key !== null) {
        if (seenIds.has(key)) continue;
        seenIds.add(key);
      }
      frag.append(messageElement(m));
    }
    els.list.replaceChildren(frag);
    els.list.dataset.generation = String(Number(els.list.dataset.generation || 0) + 1);
    afterListChange(stick || els.list.dataset.generation === '1');
  }

  // Where a v1 message goes: in id order, so that a resync filling a hole
  // puts the recovered messages before the ones that came after it.
  function insertionPoint(m) {
    if (!Number.isSafeInteger(m.id)) return null;
    let next = null;
    for (let li = els.list.lastElementChild; li !== null; li = li.previousElementSibling) {
      const id = Number(li.dataset.id);
      if (li.dataset.id === undefined || !Number.isSafeInteger(id)) break;
      if (id < m.id) break;
      next = li;
    }
    return next;
  }

  // The id a reconnect asks `since`: the last one before the first hole in
  // what is shown (ids of a room go up by one), else the newest.
  function resumeId() {
    let prev = null;
    for (const li of els.list.children) {
      const id = Number(li.dataset.id);
      if (li.dataset.id === undefined || !Number.isSafeInteger(id)) continue;
      if (prev !== null && id > prev + 1) return prev;
      prev = id;
    }
    return lastId;
  }

  function appendOne(m) {
    if (!validMessage(m)) return;
    noteId(m);
    const key = idKey(m);
    if (key !== null) {
      if (seenIds.has(key)) return;
      seenIds.add(key);
    }
    const stick = following || m.user === els.name.value.trim();
    els.list.insertBefore(messageElement(m), insertionPoint(m));
    while (els.list.childElementCount > MAX_RENDERED) {
      const first = els.list.firstElementChild;
      if (first.dataset.id !== undefined) seenIds.delete(first.dataset.id);
      first.remove();
    }
    afterListChange(stick);
  }

  function showRoom(name) {
    const label = name || '/';
    els.roomName.textContent = label;
    els.roomHash.hidden = !name;
    els.roomHint.hidden = Boolean(name);
    document.title = label + ' · chatws';
  }

  function showMembers(n) {
    if (!Number.isInteger(n) || n < 0) return;
    els.memberCount.textContent = String(n);
    els.members.hidden = false;
  }

  let errorTimer = 0;
  function showError(message, sticky = false) {
    els.error.textContent = message;
    els.error.hidden = false;
    clearTimeout(errorTimer);
    if (!sticky) errorTimer = setTimeout(() => { els.error.hidden = true; }, ERROR_SHOW_MS);
  }

  // ------------------------------------------------------------ protocol
  // Dispatch on the frame's shape rather than only on ws.protocol, so a
  // server that negotiated nothing but speaks the classic format still works.
  function handleFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (e) {
      console.warn('chatws: ignoring a frame that is not JSON');
      return false;
    }
    if (frame === null || typeof frame !== 'object') return false;

    if (typeof frame.type === 'string') return handleV1(frame);
    if (Array.isArray(frame.msg)) {  // classic snapshot, newest first
      replaceAll(frame.msg.slice().reverse());
      return true;
    }
    if (typeof frame.error === 'string') { showError(frame.error); return false; }
    return false;
  }

  // Returns true when the frame shows the session is in sync (hello).
  function handleV1(frame) {
    switch (frame.type) {
      case 'hello':
        if (typeof frame.room === 'string') showRoom(frame.room === '/' ? '' : frame.room);
        showMembers(frame.members);
        if (Number.isSafeInteger(frame.since) && Array.isArray(frame.history)) {
          // Recovered: exactly what was missed, after what is shown.
          for (const m of frame.history) appendOne(m);
          els.list.dataset.generation = String(Number(els.list.dataset.generation || 0) + 1);
        } else {
          replaceAll(Array.isArray(frame.history) ? frame.history : []);  // first join, or reset
        }
        return true;
      case 'msg':
        appendOne(frame);
        return false;
      case 'join':
      case 'leave':
        showMembers(frame.members);
        return false;
      case 'error':
        showError(typeof frame.error === 'string' ? frame.error : 'error');
        return false;
      case 'dropped': {
        const n = Number.isSafeInteger(frame.count) && frame.count > 0 ? frame.count : 0;
        showError((n ? n + (n === 1 ? ' message' : ' messages') : 'Messages') +
                  ' arrived faster than this page could take them; catching up.');
        scheduleResync();
        return false;
      }
      default:
        return false;  // newer server, unknown extension: ignore
    }
  }

  // ------------------------------------------------------------ connection
  let ws = null;
  let attempt = 0;        // consecutive failures; reset once a session is in sync
  let retryTimer = 0;
  let countdownTimer = 0;
  let connectTimer = 0;
  let retryAt = 0;
  let resyncTimer = 0;
  let resyncing = false;  // the socket is being closed to reconnect at once
  let lastResyncAt = -Infinity;

  function setPresence(state, text) {
    els.presence.dataset.state = state;
    els.presenceText.textContent = text;
    els.send.disabled = state !== 'connected';
    if (state !== 'connected') els.members.hidden = true;  // a stale count would mislead
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = 0;
    let sock;
    try {
      // A reconnect asks for what it missed (a classic server ignores it).
      const from = resumeId();
      const since = from === null ? '' : (wsUrl.includes('?') ? '&' : '?') + 'since=' + from;
      sock = new WebSocket(wsUrl + since, protocols);
    } catch (e) {  // e.g. a malformed URL: nothing to retry
      setPresence('disconnected', 'cannot connect');
      showError(String(e.message || e));
      return;
    }
    ws = sock;
    if (attempt > 0) setPresence('disconnected', 'reconnecting…');
    connectTimer = setTimeout(() => sock.close(), CONNECT_TIMEOUT_MS);

    sock.addEventListener('open', () => {
      if (ws !== sock) return;
      clearTimeout(connectTimer);
      document.body.dataset.protocol = sock.protocol || 'none';
      document.body.dataset.extensions = sock.extensions || 'none';  // e.g. permessage-deflate
      if (sock.protocol !== 'chatws.v1') els.members.hidden = true;  // classic has no presence
      setPresence('connected', 'connected');
    });
    sock.addEventListener('message', (ev) => {
      if (ws !== sock || typeof ev.data !== 'string') return;
      if (handleFrame(ev.data)) attempt = 0;
    });
    sock.addEventListener('close', () => {
      if (ws !== sock) return;
      clearTimeout(connectTimer);
      ws = null;
      if (resyncing) {  // our own close: come back now, asking from the hole
        resyncing = false;
        setPresence('connecting', 'catching up');
        connect();
        return;
      }
      scheduleReconnect();
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  // Reconnect from the last id before the hole the server's `dropped` notice
  // left; its hello then carries what was skipped (or resets the list if the
  // room no longer keeps all of it). At most once per RESYNC_MIN_INTERVAL_MS.
  function scheduleResync() {
    if (resyncTimer || resyncing) return;
    const wait = Math.max(0, lastResyncAt + RESYNC_MIN_INTERVAL_MS - Date.now());
    resyncTimer = setTimeout(() => {
      resyncTimer = 0;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;  // a reconnect is on its way anyway
      lastResyncAt = Date.now();
      resyncing = true;
      els.list.dataset.resyncs = String(Number(els.list.dataset.resyncs || 0) + 1);
      ws.close(1000, 'resync');
    }, wait);
  }

  // Exponential backoff with full jitter: wait a uniform random time in
  // [0, min(cap, base * factor^attempt)), so many clients dropped at once by a
  // server restart do not come back in lockstep.
  function scheduleReconnect() {
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * RECONNECT_FACTOR ** attempt);
    const delay = Math.random() * ceiling;
    attempt = Math.min(attempt + 1, 30);  // bounded exponent
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    updateCountdown();
    countdownTimer = setInterval(updateCountdown, 250);
  }

  function updateCountdown() {
    const seconds = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    setPresence('disconnected', 'reconnecting in ' + seconds + 's');
  }

  // The network came back: no reason to wait out the backoff.
  window.addEventListener('online', () => {
    if (ws === null && retryTimer) { attempt = 0; connect(); }
  });

  // Leaving the page (or entering the back/forward cache): say goodbye now so
  // the room's member count drops at once; come back if the page is restored.
  window.addEventListener('pagehide', () => {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    clearTimeout(resyncTimer);
    retryTimer = 0;
    resyncTimer = 0;
    resyncing = false;
    const sock = ws;
    ws = null;
    if (sock) sock.close(1000, 'page closed');
  });
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted && ws === null && roomValid) {
      attempt = 0;
      setPresence('connecting', 'connecting');
      connect();
    }
  });

  // ------------------------------------------------------------ composer
  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const user = els.name.value.trim();
    const text = els.text.value;
    if (!user) {
      showError('Please enter your name first.');
      els.name.focus();
      return;
    }
    if (!text.trim()) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      showError('Not connected; your message was kept.');
      return;
    }
    saveName(user);
    ws.send(JSON.stringify({ user, text }));
    els.text.value = '';
    els.text.focus();
  });

  els.name.addEventListener('change', () => saveName(els.name.value.trim()));

  // ------------------------------------------------------------ start
  els.name.value = loadName();
  showRoom(room);
  afterListChange(false);
  (els.name.value ? els.text : els.name).focus();
  if (!roomValid) {
    setPresence('disconnected', 'not connected');
    showError('Invalid room name: use 1 to 64 letters, digits, ".", "_" or "-".', true);
  } else {
    setPresence('connecting', 'connecting');
    connect();
  }
})();
