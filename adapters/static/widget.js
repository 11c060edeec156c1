/* session-suggest chat widget: one tag, no build step.
 *
 *   <script src="https://YOUR-SERVER/static/widget.js" defer
 *           data-k="3" data-send-text="false" data-open="false" data-title="Ask the docs"></script>
 *
 * data-api          API origin (default: where this script was loaded from)
 * data-k            how many suggestions to show (default 3)
 * data-send-text    "true" to send the page's main text with page views (opt-in; default off)
 * data-text-selector where the main text is (default "main, article, [role=main]")
 * data-open         "true" to open the panel on load
 * data-title        panel title
 * data-side         "right" (default) or "left": the corner it starts in (the visitor can move it)
 * data-theme        "auto" (default: the page's <meta name="color-scheme">, else prefers-color-scheme),
 *                   "light" or "dark"
 * A page that is itself a KB article may say so: <meta name="session-suggest:article-id" content="ID">;
 * a navigation-only page can skip its page view: <meta name="session-suggest:page-view" content="off">.
 *
 * Everything from the server is data: it is written with textContent, never innerHTML, and links are
 * followed only for http(s) urls.
 *
 * Requests: a page view is one POST (the event and the suggestions together), the impressions of one render
 * are one more, and a new visitor's first page adds POST /v1/sessions: at most 3 per page view. Event bodies
 * go as text/plain JSON, a CORS "simple request": no preflight, and what sendBeacon sends on page hide.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__sessionSuggestLoaded) return;
  window.__sessionSuggestLoaded = true;

  var opts = script.dataset;
  var API = (opts.api || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var K = Math.max(1, Math.min(20, parseInt(opts.k || "3", 10) || 3));
  var SEND_TEXT = opts.sendText === "true";
  var TEXT_SELECTOR = opts.textSelector || "main, article, [role=main]";
  var TITLE = opts.title || "Ask the docs";
  var SID_KEY = "session-suggest:sid";
  var OPEN_KEY = "session-suggest:open";
  var SIDE_KEY = "session-suggest:side";
  var MAX_TEXT = 20000;
  var NARROW_PX = 600; // below this many visible px across, the panel is a full-width bottom sheet
  var TEXT_PLAIN = "text/plain;charset=UTF-8";

  // ------------------------------------------------------------------ helpers

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(cls, text, label) {
    var b = el("button", cls, text);
    b.type = "button";
    if (label) b.setAttribute("aria-label", label);
    return b;
  }

  function safeHref(href) {
    try {
      var u = new URL(String(href || ""), location.href);
      // the server's url policy already holds; this is the second lock: http(s) only, and no user info
      // (a password for every visitor, or a host shown that is not the one opened)
      var web = u.protocol === "http:" || u.protocol === "https:";
      return web && !u.username && !u.password ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // The first n UTF-16 units of the text, never half a character: a cut through an emoji would keep a lone
  // surrogate, which JSON.stringify writes as "\ud83d" and the server refuses (the whole request with it).
  function cut(text, n) {
    var s = String(text).slice(0, n);
    return /[\ud800-\udbff]$/.test(s) ? s.slice(0, -1) : s;
  }

  // One line of plain text: whatever the server's snippet holds (newlines, runs of spaces, control
  // characters, a repeat of the title), the card shows a clean line that CSS ends with an ellipsis.
  function oneLine(text, title) {
    var t = String(text || "").replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029]+/g, " ");
    t = t.replace(/\s+/g, " ").trim();
    var head = String(title || "").replace(/\s+/g, " ").trim();
    if (head && t.toLowerCase().indexOf(head.toLowerCase()) === 0) t = t.slice(head.length).replace(/^[\s:|.\u2013\u2014-]+/, "");
    return t.slice(0, 300);
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function store(kind) {
    try { return window[kind]; } catch (e) { return null; }
  }

  function getItem(kind, key) {
    var s = store(kind);
    try { return s ? s.getItem(key) : null; } catch (e) { return null; }
  }

  function setItem(kind, key, value) {
    var s = store(kind);
    try { if (s) { if (value === null) s.removeItem(key); else s.setItem(key, value); } } catch (e) { /* private mode */ }
  }

  // ------------------------------------------------------------------ API

  var sessionPromise = null;
  var currentSid = null; // for beacons on page hide, which cannot wait for a promise

  function newSession() {
    // No body, no headers: a simple cross-origin request (no preflight).
    return fetch(API + "/v1/sessions", { method: "POST" })
      .then(function (r) { if (!r.ok) throw new Error("session " + r.status); return r.json(); })
      .then(function (body) { setItem("localStorage", SID_KEY, body.session_id); return body.session_id; });
  }

  function session() {
    if (!sessionPromise) {
      var sid = getItem("localStorage", SID_KEY);
      sessionPromise = sid ? Promise.resolve(sid) : newSession();
    }
    return sessionPromise.then(function (sid) { currentSid = sid; return sid; });
  }

  // Calls /v1/sessions/{sid}{path}; an expired or erased session is replaced once and the call retried.
  // `plain`: send the JSON body as text/plain (endpoints that accept it), so no CORS preflight is needed.
  function call(method, path, body, extra, retried) {
    extra = extra || {};
    return session().then(function (sid) {
      var init = { method: method, headers: {} };
      if (body !== undefined) {
        init.headers["Content-Type"] = extra.plain ? TEXT_PLAIN : "application/json";
        init.body = JSON.stringify(body);
      }
      if (extra.keepalive) init.keepalive = true;
      return fetch(API + "/v1/sessions/" + encodeURIComponent(sid) + path, init).then(function (r) {
        if (r.status === 404 && !retried) {
          return r.json().catch(function () { return {}; }).then(function (err) {
            if (!err.error || err.error.code !== "unknown_session") return { status: 404, body: err };
            setItem("localStorage", SID_KEY, null);
            sessionPromise = newSession();
            return call(method, path, body, extra, true);
          });
        }
        if (r.status === 204) return { status: 204, body: null };
        return r.json().catch(function () { return null; }).then(function (b) { return { status: r.status, body: b }; });
      });
    });
  }

  // Several events in one request, each with its own id so a resent batch is stored once.
  function sendEvents(events, suggest, extra) {
    events.forEach(function (e) { if (!e.event_id) e.event_id = randomId(); });
    var body = { events: events };
    if (suggest) body.suggest = suggest;
    return call("POST", "/events/batch", body, { plain: true, keepalive: extra && extra.keepalive });
  }

  function beacon(events) {
    if (!currentSid || !events.length) return;
    events.forEach(function (e) { if (!e.event_id) e.event_id = randomId(); });
    var url = API + "/v1/sessions/" + encodeURIComponent(currentSid) + "/events/batch";
    var data = JSON.stringify({ events: events });
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([data], { type: TEXT_PLAIN }))) return;
    } catch (e) { /* fall through to fetch */ }
    fetch(url, { method: "POST", headers: { "Content-Type": TEXT_PLAIN }, body: data, keepalive: true })
      .catch(function () { return null; });
  }

  // ------------------------------------------------------------------ DOM

  var host = el("div");
  host.id = "session-suggest-widget";
  // The page's own CSS must not give the host a transform, filter or size: any of those would make it the
  // containing block of the fixed frame inside it. Styles are set through the CSSOM only (never a style
  // attribute or a <style> element): a site whose Content-Security-Policy forbids inline styles allows these.
  host.style.setProperty("all", "initial", "important");
  host.setAttribute("data-state", "loading");
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var css = el("link");
  css.rel = "stylesheet";
  css.href = API + "/static/widget.css";
  // Hidden until the stylesheet arrives, so the page never flashes unstyled widget parts.
  css.addEventListener("load", function () { frame.style.visibility = ""; });
  root.appendChild(css);

  // The frame covers the visual viewport (what the visitor sees), not the layout viewport that
  // position:fixed uses: on a phone a non-responsive page is laid out ~1000 px wide and zoomed out.
  var frame = el("div", "ss-frame");
  frame.style.visibility = "hidden";
  var side = getItem("localStorage", SIDE_KEY) || (opts.side === "left" ? "left" : "right");
  frame.setAttribute("data-side", side);

  var launcher = el("button", "ss-launcher", TITLE);
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "ss-panel");

  var panel = el("section", "ss-panel");
  panel.id = "ss-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "false");
  panel.setAttribute("aria-labelledby", "ss-title");
  panel.tabIndex = -1;
  panel.hidden = true;

  var head = el("header", "ss-head");
  var title = el("h2", "ss-title", TITLE);
  title.id = "ss-title";
  head.appendChild(title);
  var moveBtn = button("ss-move", "⇆", "Move to the other side");
  var closeBtn = button("ss-close", "×", "Close");
  head.appendChild(moveBtn);
  head.appendChild(closeBtn);

  var body = el("div", "ss-body");
  var suggestBox = el("div", "ss-suggestions");
  var toggle = button("ss-h ss-toggle", "Suggested for you");
  toggle.setAttribute("aria-expanded", "true");
  toggle.setAttribute("aria-controls", "ss-list");
  suggestBox.appendChild(toggle);
  var suggestList = el("div", "ss-list");
  suggestList.id = "ss-list";
  suggestList.setAttribute("role", "list");
  suggestBox.appendChild(suggestList);

  var log = el("div", "ss-log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", "Conversation");
  body.appendChild(suggestBox);
  body.appendChild(log);

  var form = el("form", "ss-form");
  var input = el("input", "ss-input");
  input.type = "text";
  input.maxLength = 2000;
  input.placeholder = "Ask a question…";
  input.setAttribute("aria-label", "Your question");
  input.autocomplete = "off";
  var send = el("button", "ss-send", "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);

  panel.appendChild(head);
  panel.appendChild(body);
  panel.appendChild(form);
  frame.appendChild(launcher);
  frame.appendChild(panel);
  root.appendChild(frame);

  // ------------------------------------------------------------------ where it sits

  var placeQueued = false;

  function place() {
    placeQueued = false;
    var vv = window.visualViewport;
    var width;
    if (vv) {
      var s = vv.scale || 1;
      // Size in unzoomed px, then scale by 1/s: the widget keeps its size whatever the page's zoom.
      width = vv.width * s;
      frame.style.width = width + "px";
      frame.style.height = vv.height * s + "px";
      frame.style.transform = "translate(" + vv.offsetLeft + "px," + vv.offsetTop + "px) scale(" + 1 / s + ")";
    } else {
      width = window.innerWidth;
    }
    frame.setAttribute("data-narrow", width < NARROW_PX ? "true" : "false");
  }

  function queuePlace() {
    if (placeQueued) return;
    placeQueued = true;
    (window.requestAnimationFrame || setTimeout)(place);
  }

  function applyScheme() {
    var wanted = opts.theme === "dark" || opts.theme === "light" ? opts.theme : null;
    if (!wanted) {
      // A site that declares one scheme only is that scheme, whatever the visitor's system prefers.
      var meta = document.querySelector('meta[name="color-scheme"]');
      var declared = meta ? meta.content.toLowerCase().split(/\s+/) : [];
      var light = declared.indexOf("light") >= 0, dark = declared.indexOf("dark") >= 0;
      if (light !== dark) wanted = dark ? "dark" : "light";
    }
    if (!wanted) wanted = window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
    frame.setAttribute("data-scheme", wanted);
  }

  // ------------------------------------------------------------------ open, close, move

  function setOpen(open, how) {
    panel.hidden = !open;
    frame.setAttribute("data-open", open ? "true" : "false");
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    setItem("sessionStorage", OPEN_KEY, open ? "1" : "0");
    if (open) {
      flushImpressions();
      // Move focus only when the visitor opened it: a panel open on page load must not steal focus.
      if (how === "user") panel.focus();
    } else if (how === "user") {
      launcher.focus();
    }
  }

  launcher.addEventListener("click", function () { setOpen(panel.hidden, "user"); });
  closeBtn.addEventListener("click", function () { setOpen(false, "user"); });
  moveBtn.addEventListener("click", function () {
    side = side === "right" ? "left" : "right";
    frame.setAttribute("data-side", side);
    setItem("localStorage", SIDE_KEY, side);
  });
  // Escape anywhere in the widget (the panel or the launcher) collapses the open panel.
  frame.addEventListener("keydown", function (ev) {
    if ((ev.key === "Escape" || ev.key === "Esc") && !panel.hidden) {
      ev.stopPropagation();
      setOpen(false, "user");
    }
  });
  toggle.addEventListener("click", function () {
    var open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    suggestList.hidden = !open;
  });

  // ------------------------------------------------------------------ impressions

  // Suggestions rendered but not yet reported: sent together, one request per render, only once the
  // panel is open (a suggestion in a closed panel was not seen).
  var pendingImpressions = [];
  var flushTimer = null;

  function impressionEvents() {
    var events = pendingImpressions.map(function (s) {
      return { kind: "suggestion_impression", article_id: String(s.id), position: s.rank };
    });
    pendingImpressions = [];
    return events;
  }

  function flushImpressions() {
    clearTimeout(flushTimer);
    flushTimer = null;
    if (panel.hidden || !pendingImpressions.length) return;
    // keepalive: a visitor who follows a link at once must not cancel the record of what they were shown.
    sendEvents(impressionEvents(), 0, { keepalive: true }).catch(function () { return null; });
  }

  function queueImpressions(list) {
    pendingImpressions = pendingImpressions.concat(list);
    if (flushTimer === null) flushTimer = setTimeout(flushImpressions, 0); // what one render adds, together
  }

  function flushOnHide() {
    if (!panel.hidden && pendingImpressions.length) beacon(impressionEvents());
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flushOnHide();
  });
  window.addEventListener("pagehide", flushOnHide);

  // ------------------------------------------------------------------ cards

  function card(s) {
    var href = safeHref(s.href || s.url);
    var a = el(href ? "a" : "div", "ss-card");
    if (href) a.href = href;
    a.setAttribute("role", "listitem");
    a.setAttribute("data-article-id", String(s.id));
    var name = String(s.title || "").replace(/\s+/g, " ").trim();
    a.appendChild(el("span", "ss-card-title", name));
    var snippet = oneLine(s.snippet, name);
    if (snippet) a.appendChild(el("span", "ss-snippet", snippet));
    if (s.reason) a.appendChild(el("span", "ss-reason", oneLine(s.reason)));
    a.addEventListener("click", function (ev) {
      // The impressions still waiting go with the click: one request, in the order things happened.
      var events = panel.hidden ? [] : impressionEvents();
      events.push({ kind: "suggestion_click", article_id: String(s.id), position: s.rank });
      var sent = sendEvents(events, 0, { keepalive: true }).catch(function () { return null; });
      if (!href || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      var gone = false;
      var go = function () { if (!gone) { gone = true; location.href = href; } };
      setTimeout(go, 1500); // never hold the visitor back for long
      sent.then(go);
    });
    return a;
  }

  function showSuggestions(list) {
    suggestList.textContent = "";
    if (panel.hidden) pendingImpressions = []; // the last list was never seen: it made no impressions
    if (!list.length) {
      suggestList.appendChild(el("p", "ss-empty", "Read a page or two and suggestions will appear here."));
      return;
    }
    list.forEach(function (s) { suggestList.appendChild(card(s)); });
    queueImpressions(list);
  }

  function showResult(res) {
    if (res.status === 200 && res.body && res.body.suggestions) {
      showSuggestions(res.body.suggestions);
      host.setAttribute("data-state", res.body.suggestions.length ? "ready" : "empty");
    } else {
      showSuggestions([]);
      host.setAttribute("data-state", "error");
    }
  }

  // ------------------------------------------------------------------ chat

  function addMessage(who, text) {
    var m = el("div", "ss-msg ss-" + who);
    m.appendChild(el("div", "ss-text", text));
    log.appendChild(m);
    log.scrollTop = log.scrollHeight;
    return m;
  }

  function startChatting() {
    if (frame.classList.contains("ss-chatting")) return;
    // The conversation gets the room: the suggestions fold to their titles (the toggle shows them again).
    frame.classList.add("ss-chatting");
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    startChatting();
    var asked = addMessage("user", text);
    var pending = addMessage("bot pending", "…");
    send.disabled = true;
    call("POST", "/chat", { message: cut(text, 2000), k: K }).then(function (res) {
      log.removeChild(pending);
      if (res.status !== 200 || !res.body) {
        var msg = res.body && res.body.error ? res.body.error.message : "The assistant is unavailable.";
        addMessage("bot ss-error", msg);
        return;
      }
      var b = res.body;
      var m = addMessage("bot", b.reply);
      if (b.source) {
        var srcHref = safeHref(b.source.href);
        var src = el(srcHref ? "a" : "span", "ss-source", "Source: " + b.source.title);
        if (srcHref) src.href = srcHref;
        m.appendChild(src);
      }
      if (b.responder) m.appendChild(el("div", "ss-by", "Answered by: " + b.responder));
      if (b.suggestions && b.suggestions.length) {
        var box = el("div", "ss-inline");
        box.setAttribute("role", "list");
        box.setAttribute("aria-label", "Related articles");
        box.appendChild(el("div", "ss-h", "Related articles"));
        b.suggestions.forEach(function (s) { box.appendChild(card(s)); });
        m.appendChild(box);
        queueImpressions(b.suggestions);
      }
      log.scrollTop = asked.offsetTop - 8; // the question, then as much of the answer as fits
    }).catch(function () {
      log.removeChild(pending);
      addMessage("bot ss-error", "The assistant is unavailable.");
    }).then(function () { send.disabled = false; });
  });

  // ------------------------------------------------------------------ the page view

  // Read before the widget joins the page, so its own text is never part of the page's text.
  function pageViewEvent() {
    // Navigation-only pages (a site index, search results) can opt out: they say nothing about interest.
    var skip = document.querySelector('meta[name="session-suggest:page-view"]');
    if (skip && skip.content === "off") return null;
    var ev = { kind: "page_view", url: cut(location.href.split("#")[0], 2048) };
    if (document.title) ev.title = cut(document.title, 500);
    var meta = document.querySelector('meta[name="session-suggest:article-id"]');
    if (meta && meta.content) ev.article_id = cut(meta.content, 200);
    if (SEND_TEXT) {
      var main = document.querySelector(TEXT_SELECTOR) || document.body;
      var text = (main && main.innerText ? main.innerText : "").trim();
      if (text) ev.text = cut(text, MAX_TEXT);
    }
    return ev;
  }

  function start() {
    var ev = pageViewEvent();
    document.body.appendChild(host);
    applyScheme();
    place();
    if (window.visualViewport) {
      window.visualViewport.addEventListener("resize", queuePlace);
      window.visualViewport.addEventListener("scroll", queuePlace);
    }
    window.addEventListener("resize", queuePlace);
    if (window.matchMedia) {
      var mq = matchMedia("(prefers-color-scheme: dark)");
      if (mq.addEventListener) mq.addEventListener("change", applyScheme);
    }
    var remembered = getItem("sessionStorage", OPEN_KEY);
    setOpen(remembered === null ? opts.open === "true" : remembered === "1", "load");
    // One request: the page view (if any) and the suggestions that follow from it.
    sendEvents(ev ? [ev] : [], K).then(showResult).catch(function () { showResult({ status: 0 }); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
