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
 * A page that is itself a KB article may say so: <meta name="session-suggest:article-id" content="ID">;
 * a navigation-only page can skip its page view: <meta name="session-suggest:page-view" content="off">.
 *
 * Everything from the server is data: it is written with textContent, never innerHTML, and links are
 * followed only for http(s) urls.
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
  var MAX_TEXT = 20000;

  // ------------------------------------------------------------------ helpers

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeHref(href) {
    try {
      var u = new URL(String(href || ""), location.href);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
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

  function newSession() {
    return fetch(API + "/v1/sessions", { method: "POST" })
      .then(function (r) { if (!r.ok) throw new Error("session " + r.status); return r.json(); })
      .then(function (body) { setItem("localStorage", SID_KEY, body.session_id); return body.session_id; });
  }

  function session() {
    if (!sessionPromise) {
      var sid = getItem("localStorage", SID_KEY);
      sessionPromise = sid ? Promise.resolve(sid) : newSession();
    }
    return sessionPromise;
  }

  // Calls /v1/sessions/{sid}{path}; an expired or erased session is replaced once and the call retried.
  function call(method, path, body, extra, retried) {
    return session().then(function (sid) {
      var init = { method: method, headers: {} };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      if (extra && extra.keepalive) init.keepalive = true;
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

  function track(event, extra) {
    event.event_id = randomId();
    return call("POST", "/events", event, extra).catch(function () { return null; });
  }

  // ------------------------------------------------------------------ DOM

  var host = el("div");
  host.id = "session-suggest-widget";
  host.setAttribute("data-state", "loading");
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var css = el("link");
  css.rel = "stylesheet";
  css.href = API + "/static/widget.css";
  root.appendChild(css);

  var launcher = el("button", "ss-launcher", TITLE);
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  var panel = el("section", "ss-panel");
  panel.setAttribute("aria-label", TITLE);
  panel.hidden = true;

  var head = el("header", "ss-head");
  head.appendChild(el("span", "ss-title", TITLE));
  var closeBtn = el("button", "ss-close", "×");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", "Close");
  head.appendChild(closeBtn);

  var suggestBox = el("div", "ss-suggestions");
  suggestBox.appendChild(el("h3", "ss-h", "Suggested for you"));
  var suggestList = el("div", "ss-list");
  suggestBox.appendChild(suggestList);

  var log = el("div", "ss-log");
  log.setAttribute("aria-live", "polite");
  var form = el("form", "ss-form");
  var input = el("input", "ss-input");
  input.type = "text";
  input.maxLength = 2000;
  input.placeholder = "Ask a question…";
  input.setAttribute("aria-label", "Your question");
  var send = el("button", "ss-send", "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);

  panel.appendChild(head);
  panel.appendChild(suggestBox);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(launcher);
  root.appendChild(panel);

  var pendingImpressions = [];

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    setItem("sessionStorage", OPEN_KEY, open ? "1" : "0");
    if (open) flushImpressions();
  }

  function flushImpressions() {
    if (panel.hidden) return;
    var batch = pendingImpressions;
    pendingImpressions = [];
    batch.forEach(function (s) {
      track({ kind: "suggestion_impression", article_id: s.id, position: s.rank });
    });
  }

  function card(s) {
    var href = safeHref(s.href || s.url);
    var a = el(href ? "a" : "div", "ss-card");
    if (href) a.href = href;
    a.setAttribute("data-article-id", String(s.id));
    a.appendChild(el("span", "ss-card-title", s.title));
    if (s.snippet) a.appendChild(el("span", "ss-snippet", s.snippet));
    if (s.reason) a.appendChild(el("span", "ss-reason", s.reason));
    a.addEventListener("click", function (ev) {
      if (!href || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) {
        track({ kind: "suggestion_click", article_id: s.id, position: s.rank }, { keepalive: true });
        return;
      }
      ev.preventDefault();
      var go = function () { location.href = href; };
      var timer = setTimeout(go, 1500); // never hold the visitor back for long
      track({ kind: "suggestion_click", article_id: s.id, position: s.rank }, { keepalive: true })
        .then(function () { clearTimeout(timer); go(); });
    });
    return a;
  }

  function showSuggestions(list) {
    suggestList.textContent = "";
    if (!list.length) {
      suggestList.appendChild(el("p", "ss-empty", "Read a page or two and suggestions will appear here."));
      return;
    }
    list.forEach(function (s) { suggestList.appendChild(card(s)); });
    pendingImpressions = pendingImpressions.concat(list);
    flushImpressions();
  }

  function refreshSuggestions() {
    return call("GET", "/suggestions?k=" + K).then(function (res) {
      if (res.status === 200 && res.body) {
        showSuggestions(res.body.suggestions || []);
        host.setAttribute("data-state", "ready");
      } else {
        showSuggestions([]);
        host.setAttribute("data-state", res.status === 409 ? "empty" : "error");
      }
    }).catch(function () {
      showSuggestions([]);
      host.setAttribute("data-state", "error");
    });
  }

  function addMessage(who, text) {
    var m = el("div", "ss-msg ss-" + who);
    m.appendChild(el("div", "ss-text", text));
    log.appendChild(m);
    log.scrollTop = log.scrollHeight;
    return m;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    panel.classList.add("ss-chatting");
    var asked = addMessage("user", text);
    var pending = addMessage("bot pending", "…");
    send.disabled = true;
    call("POST", "/chat", { message: text.slice(0, 2000), k: K }).then(function (res) {
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
        box.appendChild(el("div", "ss-h", "Related articles"));
        b.suggestions.forEach(function (s) { box.appendChild(card(s)); });
        m.appendChild(box);
        pendingImpressions = pendingImpressions.concat(b.suggestions);
        flushImpressions();
      }
      log.scrollTop = asked.offsetTop - 8; // the question, then as much of the answer as fits
    }).catch(function () {
      log.removeChild(pending);
      addMessage("bot ss-error", "The assistant is unavailable.");
    }).then(function () { send.disabled = false; });
  });

  launcher.addEventListener("click", function () { setOpen(panel.hidden); });
  closeBtn.addEventListener("click", function () { setOpen(false); });

  // ------------------------------------------------------------------ the page view

  // Read before the widget joins the page, so its own text is never part of the page's text.
  function pageViewEvent() {
    // Navigation-only pages (a site index, search results) can opt out: they say nothing about interest.
    var skip = document.querySelector('meta[name="session-suggest:page-view"]');
    if (skip && skip.content === "off") return null;
    var ev = { kind: "page_view", url: location.href.split("#")[0].slice(0, 2048) };
    if (document.title) ev.title = document.title.slice(0, 500);
    var meta = document.querySelector('meta[name="session-suggest:article-id"]');
    if (meta && meta.content) ev.article_id = meta.content.slice(0, 200);
    if (SEND_TEXT) {
      var main = document.querySelector(TEXT_SELECTOR) || document.body;
      var text = (main && main.innerText ? main.innerText : "").trim();
      if (text) ev.text = text.slice(0, MAX_TEXT);
    }
    return ev;
  }

  function start() {
    var ev = pageViewEvent();
    document.body.appendChild(host);
    var remembered = getItem("sessionStorage", OPEN_KEY);
    setOpen(remembered === null ? opts.open === "true" : remembered === "1");
    (ev ? track(ev) : Promise.resolve(null)).then(refreshSuggestions);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
