// The editor's live preview: the server renders the body with the published page's renderer and lints the
// whole file; problems are listed with their body line.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("editor");
  if (!form) return;
  const preview = document.getElementById("live-preview");
  const list = document.getElementById("live-problems");
  let timer = null;
  let sent = 0;
  const refresh = async () => {
    const ticket = ++sent;
    const response = await fetch(form.dataset.preview, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    if (ticket !== sent || !response.ok) return;
    const data = await response.json();
    preview.innerHTML = data.html; // server-rendered: raw HTML disabled, links restricted
    list.replaceChildren(
      ...data.problems.map((p) => {
        const item = document.createElement("li");
        item.className = p.severity;
        const where = p.body_line > 0 ? `body line ${p.body_line}` : `front matter line ${p.line}`;
        item.textContent = `${where}${p.field ? ` · ${p.field}` : ""}: ${p.message}`;
        if (p.body_line > 0) item.dataset.line = p.body_line;
        return item;
      }),
    );
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  refresh();
});

// A problem with a body line selects that line in the editor when clicked.
document.addEventListener("click", (event) => {
  const item = event.target.closest(".problems li[data-line]");
  const box = document.querySelector("#editor textarea[name=body]");
  if (!item || !box) return;
  const lines = box.value.split("\n");
  const line = Math.min(Number(item.dataset.line), lines.length);
  const start = lines.slice(0, line - 1).reduce((n, text) => n + text.length + 1, 0);
  box.focus();
  box.setSelectionRange(start, start + lines[line - 1].length);
  const height = box.scrollHeight / lines.length;
  box.scrollTop = Math.max(0, (line - 5) * height);
});
