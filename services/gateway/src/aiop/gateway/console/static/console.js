// The AIOP console's only script: it keeps the parts of a page marked data-live current
// over Server-Sent Events, and adds two small conveniences to forms. The server sends
// HTML; each top-level element says where it goes (console/live.py).
"use strict";

(function () {
  function place(el) {
    const op = el.dataset.op || "replace";
    const here = el.id ? document.getElementById(el.id) : null;
    if (op === "append") {
      if (!here) return;
      const atEnd = here.scrollHeight - here.scrollTop - here.clientHeight < 24;
      here.append(...Array.from(el.childNodes));
      if (atEnd) here.scrollTop = here.scrollHeight;
      return;
    }
    if (here) {
      here.replaceWith(el);
    } else if (op === "upsert" && el.dataset.into) {
      const into = document.getElementById(el.dataset.into);
      if (!into) return;
      into.prepend(el);
      trim(into);
      const empty = document.getElementById("no-runs");
      if (empty) empty.remove();
    }
  }

  // A list that only grows (the event tail, the runs) keeps its newest data-keep items.
  function trim(list) {
    const keep = Number(list.dataset.keep);
    while (keep > 0 && list.children.length > keep) list.lastElementChild.remove();
  }

  function apply(html) {
    const box = document.createElement("template");
    box.innerHTML = html;
    for (const el of Array.from(box.content.children)) place(el);
  }

  function follow(el) {
    const source = new EventSource(el.dataset.live);
    source.onmessage = (event) => apply(event.data);
    source.addEventListener("end", () => source.close());
    window.addEventListener("pagehide", () => source.close());
  }

  function ready() {
    document.querySelectorAll("[data-live]").forEach(follow);
    document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
      select.addEventListener("change", () => select.form.requestSubmit());
    });
    document.addEventListener("submit", (event) => {
      const message = event.target.dataset && event.target.dataset.confirm;
      if (message && !window.confirm(message)) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", ready);
})();
