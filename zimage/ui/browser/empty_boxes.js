// Gradio (6.31) draws an empty image, gallery or slider as a plain <div aria-label="Empty
// value"> holding an icon. ARIA forbids a label on an element without a role (axe-core:
// aria-prohibited-attr), and screen readers ignore it. Giving the box the role of the picture it
// stands for makes the label count. Harmless once Gradio sets a role itself.
(() => {
  const fix = () => {
    for (const box of document.querySelectorAll("div.empty[aria-label]:not([role])")) {
      box.setAttribute("role", "img");
    }
  };
  new MutationObserver(fix).observe(document.documentElement, { childList: true, subtree: true });
  fix();
})();
