// ebm-teach book: shrink a display equation that is wider than the text column (down to 70 %), so that it
// is not cut off; below that it scrolls (ebm-book.css). Runs after MathJax's first typesetting and on resize.
(function () {
  "use strict";
  var MIN_PERCENT = 70;

  function fitDisplayMath() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (box) {
      box.style.fontSize = "";
      var percent = 100;
      for (var pass = 0; pass < 6 && percent > MIN_PERCENT; pass++) {
        var ratio = box.scrollWidth / Math.max(box.clientWidth, 1);
        if (ratio <= 1.002) break;
        percent = Math.max(MIN_PERCENT, Math.floor(percent / ratio) - 1);
        box.style.fontSize = percent + "%";
      }
    });
  }

  function whenTypeset(callback, tries) {
    var mathjax = window.MathJax;
    if (mathjax && mathjax.startup && mathjax.startup.promise) {
      mathjax.startup.promise.then(callback);
    } else if (tries < 200) {
      setTimeout(function () { whenTypeset(callback, tries + 1); }, 50);
    }
  }

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(fitDisplayMath, 150);
  });
  function start() {
    if (document.querySelector(".math")) {
      whenTypeset(fitDisplayMath, 0);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
