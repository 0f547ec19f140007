// Fixes to the ARIA of Gradio's own markup (Gradio 6.31), applied as Gradio renders it, and the
// roles of the page's own live text. Each fix is harmless once Gradio fixes the markup itself;
// tests/browser/test_accessibility.py runs axe-core on every tab and state and fails if one
// stops working.
(() => {
  const fixes = [
    // An empty image, gallery or slider is a plain <div aria-label="Empty value"> holding an
    // icon. ARIA forbids a label on an element without a role (axe: aria-prohibited-attr), and
    // screen readers ignore it; the role of the picture it stands for makes the label count.
    ["div.empty[aria-label]:not([role])", (box) => box.setAttribute("role", "img")],
    // A message's header is a role="button" (it folds the message) with the Close button inside
    // it: nested controls (axe: nested-interactive) that screen readers cannot tell apart. The
    // header stays clickable; Close stays a button.
    [
      ".toast-header[role='button']:has(button)",
      (header) => {
        header.removeAttribute("role");
        header.removeAttribute("tabindex");
      },
    ],
    // Where a stopped run ended (zimage/page/run_status.py) is news a screen reader should read
    // out when it appears: a status, a polite live region.
    [".block.run-status:not([role])", (line) => line.setAttribute("role", "status")],
  ];
  const fix = () => {
    for (const [selector, apply] of fixes) document.querySelectorAll(selector).forEach(apply);
  };
  new MutationObserver(fix).observe(document.documentElement, { childList: true, subtree: true });
  fix();
})();
