// errand's dashboard: what the server-rendered pages need in the browser. No inline
// script exists (the Content-Security-Policy forbids it); this file:
// - gives htmx the page's CSRF token, sent as X-Errand-Csrf with every request,
// - focuses the job search on "/",
// - keeps relative times ("3 min ago") current,
// - shows failed actions' messages,
// - leaves a table alone while the user is busy in it (ticked boxes, an open form),
// - refreshes pages marked data-tick while they show,
// - holds the tab's one live stream, closed while the tab is hidden (see below).
(function () {
  'use strict';

  // Signed in (auth on), the value is the session's, from the errand_csrf cookie; with
  // auth off any value passes and the page's <meta> carries one.
  var token = document.querySelector('meta[name="errand-csrf"]');
  var fromCookie = document.cookie.match(/(?:^|;\s*)errand_csrf=([^;]+)/);
  var csrf = fromCookie ? fromCookie[1] : (token && token.content);
  if (csrf) {
    document.body.setAttribute('hx-headers', JSON.stringify({ 'X-Errand-Csrf': csrf }));
  }

  // "/" focuses the search, unless the user is typing somewhere.
  document.addEventListener('keydown', function (e) {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var search = document.getElementById('find-job');
    if (search) {
      e.preventDefault();
      search.focus();
      search.select();
    }
  });

  function relative(deltaMs) {
    var secs = Math.floor(Math.abs(deltaMs) / 1000);
    if (secs < 5) return 'just now';
    var amount;
    if (secs < 60) amount = secs + ' s';
    else if (secs < 3600) amount = Math.floor(secs / 60) + ' min';
    else if (secs < 48 * 3600) amount = Math.floor(secs / 3600) + ' h';
    else amount = Math.floor(secs / 86400) + ' d';
    return deltaMs < 0 ? amount + ' ago' : 'in ' + amount;
  }

  function refreshTimes(root) {
    var now = Date.now();
    var times = (root || document).querySelectorAll('time[data-rel]');
    for (var i = 0; i < times.length; i++) {
      var at = Date.parse(times[i].getAttribute('datetime'));
      if (!isNaN(at)) times[i].textContent = relative(at - now);
    }
  }
  // The server renders them; this only ages them while the page stays open.
  setInterval(function () {
    if (!document.hidden) refreshTimes();
  }, 15000);

  function flash(text, kind) {
    var box = document.getElementById('flash');
    if (!box) return;
    var p = document.createElement('p');
    p.className = kind || 'error';
    p.textContent = text;
    box.replaceChildren(p);
  }

  document.addEventListener('htmx:responseError', function (e) {
    var xhr = e.detail.xhr;
    var message = 'The action failed (' + xhr.status + ').';
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (_) { /* not JSON: keep the generic message */ }
    flash(message, 'error');
  });
  document.addEventListener('htmx:sendError', function () {
    flash('errand did not answer; is the server running?', 'error');
  });

  // A live region marked data-keep-selection is not refreshed while the user is in the
  // middle of something in it (boxes ticked, a folded form such as a backfill open, or a
  // field focused): no refresh starts, and one already under way is not swapped in.
  function keepsSelection(elt, verb) {
    return elt && elt.hasAttribute && elt.hasAttribute('data-keep-selection') &&
      verb === 'get' && (elt.querySelector('input[type="checkbox"]:checked') ||
        elt.querySelector('details[open]') ||
        (document.activeElement && document.activeElement !== document.body &&
          elt.contains(document.activeElement) && document.activeElement.matches('input, select, textarea')));
  }
  document.addEventListener('htmx:beforeRequest', function (e) {
    if (keepsSelection(e.detail.elt, e.detail.requestConfig && e.detail.requestConfig.verb)) {
      e.preventDefault();
    }
  });
  document.addEventListener('htmx:beforeSwap', function (e) {
    if (keepsSelection(e.detail.elt, e.detail.requestConfig && e.detail.requestConfig.verb)) {
      e.detail.shouldSwap = false;
    }
  });

  // A page whose data changes without an event (node heartbeats, webhook deliveries)
  // carries data-tick="<ms>" on its live region: it is fetched again that often while the
  // tab shows, never while it is hidden.
  var ticking = document.querySelector('[data-tick]');
  if (ticking) {
    setInterval(function () {
      if (document.hidden) return;
      var elts = document.querySelectorAll('[data-tick]');
      for (var i = 0; i < elts.length; i++) htmx.trigger(elts[i], 'tick');
    }, Number(ticking.getAttribute('data-tick')) || 5000);
  }

  // The tab's one live stream (GET /ui/live, from <body data-live>): it says which topics
  // changed, and htmx re-fetches the regions marked hx-trigger="sse:changed-<topic>"; on a
  // job's page it carries the log's lines too. Browsers allow six connections per host over
  // HTTP/1 across every tab, so a tab holds one stream at most, and none while hidden: it
  // is closed on visibilitychange and opened again when the tab shows, and the server then
  // sends every topic that changed in between (the URL's `since`).
  var liveBase = document.body.getAttribute('data-live');
  var log = document.getElementById('log');
  var source = null;
  // Log lines a page keeps; older ones are trimmed, or a chatty job's page grows forever.
  var MAX_LOG_LINES = 5000;

  function listeners(name) {
    var trigger = 'sse:' + name;
    var found = [];
    var elts = document.querySelectorAll('[hx-trigger]');
    for (var i = 0; i < elts.length; i++) {
      var parts = elts[i].getAttribute('hx-trigger').split(/[\s,]+/);
      if (parts.indexOf(trigger) >= 0) found.push(elts[i]);
    }
    return found;
  }

  function changed(e) {
    var elts = listeners(e.type);
    for (var i = 0; i < elts.length; i++) htmx.trigger(elts[i], 'sse:' + e.type, { data: e.data });
  }

  function trimLog() {
    var lines = log.querySelectorAll('li.line');
    var extra = lines.length - MAX_LOG_LINES;
    if (extra <= 0) return;
    for (var i = 0; i < extra; i++) lines[i].remove();
    if (!log.querySelector('li.trimmed')) {
      var note = document.createElement('li');
      note.className = 'trimmed';
      note.textContent = 'Earlier lines trimmed: this page keeps the last ' + MAX_LOG_LINES + ' lines.';
      log.prepend(note);
    }
  }

  function lines(e) {
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    log.insertAdjacentHTML('beforeend', e.data);
    if (e.lastEventId) log.dataset.after = e.lastEventId;
    trimLog();
    // Keep the view at the bottom while the reader is there.
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function liveUrl() {
    var url = new URL(liveBase, location.href);
    if (log) {
      if (log.dataset.ended === 'true') {
        url.searchParams.delete('log');
        url.searchParams.delete('after');
      } else if (log.dataset.after) {
        url.searchParams.set('after', log.dataset.after);
      }
    }
    return url.pathname + url.search;
  }

  function openLive() {
    if (!liveBase || source || document.hidden) return;
    source = new EventSource(liveUrl());
    var topics = (new URL(liveBase, location.href).searchParams.get('topics') || '').split(',');
    for (var i = 0; i < topics.length; i++) {
      if (topics[i]) source.addEventListener('changed-' + topics[i], changed);
    }
    if (log) {
      source.addEventListener('lines', lines);
      source.addEventListener('end', function () { log.dataset.ended = 'true'; });
    }
    source.addEventListener('open', function () {
      document.dispatchEvent(new CustomEvent('errand:liveOpen'));
    });
  }

  function closeLive() {
    if (source) {
      source.close();
      source = null;
    }
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) closeLive();
    else openLive();
  });
  // A page kept in the back-forward cache comes back without its stream.
  window.addEventListener('pagehide', closeLive);
  window.addEventListener('pageshow', openLive);
  if (log) {
    var last = log.querySelector('li.line:last-child .place');
    if (last && !log.dataset.after) log.dataset.after = last.textContent;
  }
  openLive();
})();
