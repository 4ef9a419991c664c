// errand's dashboard: what the server-rendered pages need in the browser. No inline
// script exists (the Content-Security-Policy forbids it); this file:
// - gives htmx the page's CSRF token, sent as X-Errand-Csrf with every request,
// - focuses the job search on "/",
// - keeps relative times ("3 min ago") current,
// - shows failed actions' messages,
// - leaves a table alone while boxes are ticked in it (no live refresh under the cursor).
(function () {
  'use strict';

  var token = document.querySelector('meta[name="errand-csrf"]');
  if (token) {
    document.body.setAttribute('hx-headers', JSON.stringify({ 'X-Errand-Csrf': token.content }));
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

  // A live region marked data-keep-selection is not refreshed while boxes in it are ticked:
  // no refresh starts, and one already under way when a box was ticked is not swapped in.
  function keepsSelection(elt, verb) {
    return elt && elt.hasAttribute && elt.hasAttribute('data-keep-selection') &&
      verb === 'get' && elt.querySelector('input[type="checkbox"]:checked');
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

  // Log lines: keep the view at the bottom while the reader is there.
  document.addEventListener('htmx:sseBeforeMessage', function (e) {
    var log = e.target;
    if (log && log.id === 'log') {
      log.dataset.atBottom = String(log.scrollHeight - log.scrollTop - log.clientHeight < 24);
    }
  });
  document.addEventListener('htmx:sseMessage', function (e) {
    var log = e.target;
    if (log && log.id === 'log' && log.dataset.atBottom === 'true') {
      log.scrollTop = log.scrollHeight;
    }
  });
})();
