// The search page, searching as the agent types (issue 13). Without this script the page is a plain form
// (templates/search.html) that the server answers; with it:
// - a pause of DEBOUNCE_MS in typing searches GET /api/v1/search (X-KB-Page: search, so the server logs the
//   session's person and keeps one typed search one log row), only when the trimmed query changed and is at least
//   MIN_CHARS long; a newer request aborts the one in flight;
// - results are built with DOM methods only: the snippet's <mark>s are rebuilt from the API's escaped text;
// - the query (as the server masked it) and the filters live in the URL: the first results of a burst of typing
//   push a history entry, later ones replace it, and a pause of SETTLE_MS, Enter or a chip ends the burst; Back
//   restores an entry's query and results from history.state, without searching again;
// - keys: "/" goes to the box, ArrowDown/ArrowUp move through the results, Enter opens one (or searches at once
//   from the box; Shift+Enter adds a line), Esc clears the box and the results.
// performance.measure("kb:keystroke-to-results") times each input event that started a search to its results.
"use strict";

(() => {
  const DEBOUNCE_MS = 180;
  const SETTLE_MS = 1000;
  const MIN_CHARS = 2;
  const LINK_QUERY_CHARS = 200; // kb/web/pages.py LINK_QUERY_CHARS
  const HEADER_QUERY_CHARS = 80;
  const FILTERS = ["business_line", "type", "category", "mode", "as_of"];
  const BADGES = { recently_updated: "Recently updated", review_overdue: "Review overdue", retired: "Retired" };
  const MEASURE = "kb:keystroke-to-results";

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // The API's snippet is HTML-escaped text in which only <mark> and </mark> are markup: split on the tags, undo
  // the escapes of each piece, and put the pieces back as text nodes and <mark> elements.
  const ENTITIES = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'", "&amp;": "&" };
  const unescape = (text) => text.replace(/&(?:lt|gt|quot|#x27|#39|amp);/g, (entity) => ENTITIES[entity]);
  const snippet = (html) => {
    const p = el("p", "snippet");
    html.split(/(<\/?mark>)/).reduce((inMark, piece) => {
      if (piece === "<mark>") return true;
      if (piece === "</mark>") return false;
      if (piece) p.append(inMark ? el("mark", "", unescape(piece)) : document.createTextNode(unescape(piece)));
      return inMark;
    }, false);
    return p;
  };

  const linkQuery = (query) => {
    let words = query;
    if (words.length > LINK_QUERY_CHARS) words = words.slice(0, LINK_QUERY_CHARS).replace(/\s+\S*$/, "");
    return words.split(/\s+/).filter(Boolean).join(" ");
  };

  // /sops/<id>?q=<masked query>&from=<search id>#<anchor>: the SOP page marks the words and notes the click.
  const resultLink = (url, query, searchId) => {
    const [path, anchor] = url.split("#", 2);
    const params = new URLSearchParams({ q: linkQuery(query) });
    if (searchId !== undefined && searchId !== null) params.set("from", String(searchId));
    return `${path}?${params}${anchor ? `#${anchor}` : ""}`;
  };

  const plural = (n) => `${n} SOP${n === 1 ? "" : "s"}`;
  const shortQuery = (query) => (query.length > HEADER_QUERY_CHARS ? `${query.slice(0, HEADER_QUERY_CHARS - 3)}...` : query);

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("search");
    if (!form) return;
    const box = form.elements.q;
    const list = document.getElementById("result-list");
    const count = document.getElementById("result-count");
    const empty = document.getElementById("no-results");
    const error = document.getElementById("search-error");
    const degraded = document.getElementById("degraded");
    const api = form.dataset.api;

    let timer = null; // the debounce
    let settleTimer = null;
    let controller = null; // the request in flight
    let inputAt = null; // performance.now() of the input event the next search answers
    let requested = null; // the key (query + filters) of the last search sent or shown
    let inBurst = false; // the current history entry belongs to the burst of typing going on

    const fit = () => {
      box.style.height = "auto";
      box.style.height = `${box.scrollHeight + 2}px`;
    };

    const filters = () => {
      const values = {};
      for (const name of FILTERS) {
        const field = form.elements[name];
        const value = field ? field.value : "";
        if (value && !(name === "mode" && value === "hybrid")) values[name] = value;
      }
      return values;
    };

    const showGroup = () => {
      const group = (form.elements.category.value || "").split("/")[0];
      for (const row of form.querySelectorAll("fieldset.sub")) row.hidden = row.dataset.group !== group;
    };

    const pageUrl = (query) => {
      const params = new URLSearchParams(query ? { q: query } : {});
      for (const [name, value] of Object.entries(filters())) params.set(name, value);
      const text = params.toString();
      return text ? `${location.pathname}?${text}` : location.pathname;
    };

    const remember = (state, query) => {
      const url = pageUrl(query);
      if (inBurst) history.replaceState(state, "", url);
      else history.pushState(state, "", url);
      inBurst = true;
      document.title = `${query || "Search"} · kb`;
    };

    const settle = () => {
      clearTimeout(settleTimer);
      inBurst = false;
    };

    const showError = (message) => {
      error.textContent = message || "";
      error.hidden = !message;
    };

    const clearResults = () => {
      list.replaceChildren();
      count.textContent = "";
      empty.hidden = true;
      degraded.hidden = true;
      showError("");
    };

    const result = (hit, query, searchId) => {
      const item = el("li", "result");
      const link = el("a", "title", hit.title);
      link.href = resultLink(hit.url, query, searchId);
      link.append(" ", el("span", "section", `› ${hit.section.heading}`));
      item.append(link);
      if (hit.in_force_on) {
        const meta = el("p", "meta", "Revision ");
        meta.append(el("code", "", (hit.revision || "").slice(0, 10)), `, in force on ${hit.in_force_on}`);
        item.append(meta);
      }
      const badges = el("div", "badges");
      for (const name of hit.badges || []) {
        if (BADGES[name]) badges.append(el("span", `badge status ${name.replace(/_/g, "-")}`, BADGES[name]));
      }
      badges.append(el("span", "badge", hit.type), el("span", "badge", hit.business_line));
      for (const category of hit.categories) badges.append(el("span", "badge cat", category));
      badges.append(el("code", "id", hit.sop_id));
      item.append(badges, snippet(hit.snippet));
      if (hit.other_sections && hit.other_sections.length) {
        const others = el("p", "others", "Also: ");
        hit.other_sections.forEach((other, i) => {
          if (i) others.append(" · ");
          const a = el("a", "", other.heading);
          a.href = `/sops/${encodeURIComponent(hit.sop_id)}#${encodeURIComponent(other.anchor)}`;
          others.append(a);
        });
        item.append(others);
      }
      return item;
    };

    const render = (answer) => {
      showError("");
      degraded.hidden = !answer.degraded;
      list.replaceChildren(...answer.results.map((hit) => result(hit, answer.query, answer.search_id)));
      empty.hidden = answer.results.length > 0;
      count.textContent = `${plural(answer.results.length)} for “${shortQuery(answer.query)}” · ${Math.round(answer.took_ms)} ms · ${answer.mode}`;
    };

    const key = (query) => JSON.stringify([query, filters()]);

    const search = async () => {
      clearTimeout(timer);
      const query = box.value.trim();
      const wanted = key(query);
      if (wanted === requested) return;
      requested = wanted;
      if (controller) controller.abort();
      controller = null;
      if (query.length < MIN_CHARS) {
        clearResults();
        if (!query) remember({ answer: null, query: "" }, "");
        return;
      }
      const started = inputAt;
      const mine = new AbortController();
      controller = mine;
      const params = new URLSearchParams({ q: query, ...filters() });
      let answer;
      try {
        const response = await fetch(`${api}?${params}`, {
          headers: { "X-KB-Page": "search", Accept: "application/json" },
          credentials: "same-origin",
          signal: mine.signal,
        });
        const body = await response.json();
        if (!response.ok) {
          requested = null; // try again on the next change
          const retry = response.headers.get("Retry-After");
          const message = (body.error && body.error.message) || `search failed (${response.status})`;
          showError(response.status === 429 ? `Too many searches: wait ${retry || "a few"} seconds.` : message);
          return;
        }
        answer = body;
      } catch (problem) {
        if (problem.name === "AbortError") return;
        requested = null;
        showError("The search could not be reached. Check the connection and try again.");
        return;
      } finally {
        if (controller === mine) controller = null;
      }
      // A card number is masked by the server: the box and the address bar take the masked query.
      if (answer.query !== query && box.value.trim() === query) {
        box.value = answer.query;
        fit();
      }
      requested = key(answer.query);
      render(answer);
      remember({ answer, query: answer.query }, answer.query);
      if (started !== null) {
        performance.measure(MEASURE, { start: started, end: performance.now() });
        inputAt = null;
      }
      clearTimeout(settleTimer);
      settleTimer = setTimeout(settle, SETTLE_MS);
    };

    const soon = () => {
      clearTimeout(timer);
      timer = setTimeout(search, DEBOUNCE_MS);
    };

    const now = () => {
      settle();
      requested = null;
      search();
    };

    const results = () => [...list.querySelectorAll("li.result > a.title")];

    // The caret is on the box's last line (ArrowDown leaves the box) or first line (ArrowUp stays in it).
    const onLastLine = () => !box.value.slice(box.selectionEnd).includes("\n");

    box.addEventListener("input", () => {
      fit();
      inputAt = performance.now();
      soon();
    });

    box.addEventListener("keydown", (event) => {
      if (event.isComposing) return;
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        now();
      } else if (event.key === "ArrowDown" && onLastLine() && results().length) {
        event.preventDefault();
        results()[0].focus();
      } else if (event.key === "Escape") {
        event.preventDefault();
        clear();
      }
    });

    const clear = () => {
      clearTimeout(timer);
      if (controller) controller.abort();
      settle();
      box.value = "";
      fit();
      clearResults();
      requested = key("");
      remember({ answer: null, query: "" }, "");
      settle();
      box.focus();
    };

    list.addEventListener("keydown", (event) => {
      const links = results();
      const at = links.indexOf(document.activeElement);
      if (at < 0) return;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        links[Math.min(at + 1, links.length - 1)].focus();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        if (at === 0) box.focus();
        else links[at - 1].focus();
      } else if (event.key === "Escape") {
        event.preventDefault();
        clear();
      }
    });

    document.addEventListener("keydown", (event) => {
      if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
      const target = event.target;
      if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
      event.preventDefault();
      box.focus();
      box.select();
    });

    // A chip, the mode or the day: search at once, as a new history entry.
    form.addEventListener("change", (event) => {
      if (event.target === box) return;
      if (event.target.name === "category") showGroup();
      inputAt = performance.now();
      now();
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      now();
    });

    // Back and Forward: the entry's query, filters and results come back as they were.
    const initial = {
      items: [...list.children].map((node) => node.cloneNode(true)),
      count: count.textContent,
      empty: empty.hidden,
      error: error.textContent,
      degraded: degraded.hidden,
    };
    const restoreInitial = () => {
      list.replaceChildren(...initial.items.map((node) => node.cloneNode(true)));
      count.textContent = initial.count;
      empty.hidden = initial.empty;
      showError(initial.error);
      degraded.hidden = initial.degraded;
    };
    history.replaceState({ initial: true }, "");
    window.addEventListener("popstate", (event) => {
      const state = event.state || {};
      const params = new URLSearchParams(location.search);
      clearTimeout(timer);
      if (controller) controller.abort();
      box.value = params.get("q") || "";
      fit();
      for (const name of FILTERS) {
        const field = form.elements[name];
        if (!field) continue;
        const value = params.get(name) || (name === "mode" ? "hybrid" : "");
        if (field instanceof RadioNodeList) {
          for (const radio of field) radio.checked = radio.value === value;
        } else field.value = value;
      }
      showGroup();
      settle();
      if (state.answer) render(state.answer);
      else if (state.initial) restoreInitial();
      else clearResults();
      requested = key(box.value.trim());
      document.title = `${box.value.trim() || "Search"} · kb`;
    });

    fit();
    requested = key(box.value.trim());
  });
})();
