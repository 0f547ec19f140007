// The countdown in the captions of "Your images", run here so that the server is asked only
// when the images change (zimage/page/history.py). Each answer hands over, per image in the
// gallery's order, the seconds it had left and its caption with "{left}" for the time; every
// second the captions (and the pictures' alt text) show the time left now.
(() => {
  let shown = [];
  let received = 0;
  let ticking = null;

  const clock = (seconds) => {
    const left = Math.max(0, Math.floor(seconds));
    return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  };

  const render = () => {
    const elapsed = (performance.now() - received) / 1000;
    const cells = document.querySelectorAll("#history .gallery-item");
    shown.forEach((item, index) => {
      const cell = cells[index];
      if (!cell || typeof item?.caption !== "string") return;
      const text = item.caption.replace("{left}", clock(Number(item.left_s) - elapsed));
      // The caption's own text node: the gallery keeps it and writes a new caption into it.
      const caption = cell.querySelector(".caption-label")?.firstChild;
      if (caption && caption.nodeType === Node.TEXT_NODE && caption.nodeValue !== text) {
        caption.nodeValue = text;
      }
      const picture = cell.querySelector("img");
      if (picture && picture.alt !== text) picture.alt = text;
    });
  };

  window.zimageHistory = {
    show(items) {
      shown = Array.isArray(items) ? items : [];
      received = performance.now();
      if (ticking !== null) clearInterval(ticking);
      ticking = shown.length ? setInterval(render, 1000) : null;
      // The gallery draws the new images in the same task as this call, or just after it.
      requestAnimationFrame(render);
    },
  };
})();
