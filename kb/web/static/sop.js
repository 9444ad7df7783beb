// The answer-first SOP page (kb/web/templates/sop.html, kb/web/sop_page.py).
// - Marks the words of the search that led here (article[data-query], masked by the server) in the document's
//   text nodes: a TreeWalker over text nodes, each match wrapped in a <mark> made with createElement, so the
//   rendered HTML is never re-parsed and no markup can be broken or injected.
// - Marks the placeholders an agent fills ([first name], [amount]) in each customer macro, the same way.
// - Adds "Copy macro" to each macro heading (the plain text the server resolved, from #sop-macros) and
//   "Copy link" to each section heading (the section's absolute address); an aria-live region says "Copied".
// - Folds the contents into its <details> on narrow screens, and preselects the section of the address in
//   the feedback forms. The page works without this script: it only adds.
(() => {
  "use strict";

  const STOP = new Set("a an and are can could did does for from had has have how i in is it its me my of on or our so that the their them then this to was we were what when where which who why will with you your".split(" "));
  const MAX_WORDS = 12;
  const PLACEHOLDER = /\[[^\[\]\n]{1,40}\]/g;
  const NARROW = "(max-width: 700px)";

  const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  // A word's stem for prefix matching: "charged", "charges" and "charging" all mark "charge..." words.
  const stem = (word) => {
    for (const suffix of ["ing", "ed", "es", "s"]) {
      if (word.length - suffix.length >= 4 && word.endsWith(suffix)) return word.slice(0, -suffix.length);
    }
    return word;
  };

  const queryPattern = (query) => {
    const words = (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length >= 3 && !STOP.has(w));
    const stems = [...new Set(words.map(stem))].slice(0, MAX_WORDS).sort((a, b) => b.length - a.length);
    if (!stems.length) return null;
    return new RegExp(`(?<![\\p{L}\\p{N}])(?:${stems.map(escapeRegExp).join("|")})[\\p{L}\\p{N}]*`, "giu");
  };

  // Wrap every match of pattern in the text nodes under root in <mark class=className>; returns the marks.
  const markText = (root, pattern, className) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode: (node) => (node.parentElement.closest("mark, script, style, button") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
    });
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    const marks = [];
    for (const node of nodes) {
      const text = node.nodeValue;
      pattern.lastIndex = 0;
      let match;
      let cursor = 0;
      const parts = [];
      while ((match = pattern.exec(text)) !== null) {
        if (!match[0]) { pattern.lastIndex += 1; continue; }
        if (match.index > cursor) parts.push(document.createTextNode(text.slice(cursor, match.index)));
        const mark = document.createElement("mark");
        if (className) mark.className = className;
        mark.textContent = match[0];
        parts.push(mark);
        marks.push(mark);
        cursor = match.index + match[0].length;
      }
      if (!parts.length) continue;
      if (cursor < text.length) parts.push(document.createTextNode(text.slice(cursor)));
      node.replaceWith(...parts);
    }
    return marks;
  };

  const status = () => document.getElementById("copy-status");

  const announce = (button, message) => {
    const region = status();
    if (region) {
      region.textContent = "";
      setTimeout(() => { region.textContent = message; }, 50);
    }
    const label = button.dataset.label;
    button.textContent = "Copied";
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => { button.textContent = label; }, 2000);
  };

  // Copy text: the asynchronous clipboard API, else a hidden textarea and execCommand("copy").
  const copyText = async (text) => {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (error) {
        // fall through to the older way (a denied permission, an unfocused document)
      }
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.setAttribute("aria-hidden", "true");
    area.tabIndex = -1;
    area.className = "copy-buffer";
    document.body.append(area);
    const focused = document.activeElement;
    area.select();
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch (error) {
      done = false;
    }
    area.remove();
    if (focused && focused.focus) focused.focus();
    return done;
  };

  const makeButton = (label, accessibleName, className, onClick) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.textContent = label;
    button.dataset.label = label;
    button.setAttribute("aria-label", accessibleName);
    button.addEventListener("click", () => onClick(button));
    return button;
  };

  // The elements of a section: what follows its heading (or the heading's row) up to the next heading.
  const isHeading = (el) => /^H[23]$/.test(el.tagName) || el.classList.contains("section-head");
  const sectionElements = (heading) => {
    const start = heading.closest(".section-head") || heading;
    const found = [];
    for (let el = start.nextElementSibling; el && !isHeading(el); el = el.nextElementSibling) found.push(el);
    return found;
  };

  const readMacros = () => {
    const data = document.getElementById("sop-macros");
    if (!data) return [];
    try {
      const parsed = JSON.parse(data.textContent);
      return Array.isArray(parsed) ? parsed : [];
    } catch (error) {
      return [];
    }
  };

  document.addEventListener("DOMContentLoaded", () => {
    const article = document.querySelector("article.sop.answer");
    if (!article) return;
    const body = article.querySelector(".body");

    // Copy link on every section heading: the heading and its button side by side in a row (the button stays
    // out of the heading, so the heading's name is only its text).
    for (const heading of body.querySelectorAll("h2[id], h3[id]")) {
      const name = heading.textContent.trim();
      const button = makeButton("Copy link", `Copy link to the section ${name}`, "copy-link", async (b) => {
        const url = `${location.origin}${location.pathname}#${encodeURIComponent(heading.id)}`;
        const done = await copyText(url);
        announce(b, done ? `Copied the link to "${name}"` : "Could not copy the link");
      });
      const row = document.createElement("div");
      row.className = `section-head ${heading.tagName.toLowerCase()}`;
      heading.before(row);
      row.append(heading, button);
    }

    // Customer macros: placeholders marked, a Copy macro button each.
    for (const macro of readMacros()) {
      const heading = document.getElementById(macro.anchor);
      if (!heading || !body.contains(heading) || typeof macro.text !== "string") continue;
      for (const el of sectionElements(heading)) {
        if (el.tagName === "BLOCKQUOTE") {
          el.classList.add("macro");
          markText(el, PLACEHOLDER, "placeholder");
        }
      }
      const button = makeButton("Copy macro", `Copy macro: ${macro.heading}`, "copy-macro", async (b) => {
        const done = await copyText(macro.text);
        announce(b, done ? `Copied the macro "${macro.heading}"` : "Could not copy: select the text and copy it");
      });
      (heading.closest(".section-head") || heading).after(button);
    }

    // The search's words, marked in the document.
    const pattern = queryPattern(article.dataset.query || "");
    if (pattern) markText(body, pattern, "");

    // Narrow screens: the contents start folded.
    const toc = article.querySelector(".toc details");
    if (toc && window.matchMedia(NARROW).matches) toc.open = false;

    // The feedback forms talk about the section in the address, when there is one.
    const choose = () => {
      const anchor = decodeURIComponent(location.hash.slice(1));
      if (!anchor) return;
      for (const select of document.querySelectorAll("select.section-choice")) {
        if ([...select.options].some((o) => o.value === anchor)) select.value = anchor;
      }
    };
    choose();
    window.addEventListener("hashchange", choose);

    // Back at the section once the page settled (marks and buttons may have moved it).
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.scrollIntoView();
  });
})();
