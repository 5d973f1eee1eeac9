// Render the math that pymdownx.arithmatex (generic mode) marked, with the vendored KaTeX (no CDN); headings with
// math also appear in the table of contents as plain `\(...\)` text, which is rendered too.
(function () {
  var inline = [{ left: "\\(", right: "\\)", display: false }];
  var opts = { throwOnError: false, strict: "ignore" };
  function render() {
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.dataset.katexDone) return;
      renderMathInElement(el, Object.assign({ delimiters: inline.concat([{ left: "\\[", right: "\\]", display: true }]) }, opts));
      el.dataset.katexDone = "1";
    });
    document.querySelectorAll(".md-nav__link, .md-nav__link .md-ellipsis").forEach(function (el) {
      if (el.dataset.katexDone || el.textContent.indexOf("\\(") < 0) return;
      renderMathInElement(el, Object.assign({ delimiters: inline }, opts));
      el.dataset.katexDone = "1";
    });
  }
  if (typeof document$ !== "undefined") document$.subscribe(render);   // mkdocs-material (also on instant navigation)
  else document.addEventListener("DOMContentLoaded", render);
})();
