// Render the math that pymdownx.arithmatex (generic mode) marked, with the vendored KaTeX (no CDN).
(function () {
  function render() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.dataset.katexDone) return;
      renderMathInElement(el, {
        delimiters: [
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true }
        ],
        throwOnError: false,
        strict: "ignore"
      });
      el.dataset.katexDone = "1";
    });
  }
  if (typeof document$ !== "undefined") document$.subscribe(render);   // mkdocs-material (also on instant navigation)
  else document.addEventListener("DOMContentLoaded", render);
})();
