// The top bar's menu on narrow screens (below 768 px): the button shows and hides the links.
// Without this script the links simply stay visible (the CSS hides them only once .has-menu is set).
(function () {
  var bar = document.querySelector(".topbar");
  var toggle = document.getElementById("menu-toggle");
  if (!bar || !toggle) { return; }
  bar.classList.add("has-menu");
  toggle.addEventListener("click", function () {
    var open = bar.classList.toggle("menu-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && bar.classList.contains("menu-open")) {
      bar.classList.remove("menu-open");
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
})();
