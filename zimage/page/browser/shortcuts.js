// Ctrl+Enter (Cmd+Enter on a Mac) in a box runs its tab's main action: the prompt generates,
// the edit instruction edits. Gradio's multi-line text boxes submit only on Shift+Enter.
(() => {
  const ACTIONS = { prompt: "generate-button", "edit-instruction": "edit-button" };
  const SHORTCUT = "Control+Enter Meta+Enter";

  document.addEventListener(
    "keydown",
    (event) => {
      if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
      const box = event.target.closest?.(Object.keys(ACTIONS).map((id) => `#${id}`).join(","));
      const button = box && document.getElementById(ACTIONS[box.id]);
      if (!button) return;
      event.preventDefault();
      button.click();
    },
    true,
  );

  // Tell assistive technology about the shortcut, on each box as Gradio renders it.
  new MutationObserver(() => {
    for (const id of Object.keys(ACTIONS)) {
      const field = document.querySelector(`#${id} textarea:not([aria-keyshortcuts])`);
      field?.setAttribute("aria-keyshortcuts", SHORTCUT);
    }
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
