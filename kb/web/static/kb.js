// The search box is a textarea so that a pasted ticket keeps its lines (greetings, signatures and
// quoted replies are recognised line by line). Enter searches; Shift+Enter adds a line.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("form.search textarea[name=q]");
  if (!box) return;
  const fit = () => {
    box.style.height = "auto";
    box.style.height = `${box.scrollHeight + 2}px`;
  };
  box.addEventListener("input", fit);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });
  fit();
});
