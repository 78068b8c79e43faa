// Small progressive enhancements shared by list pages (no inline scripts: the CSP forbids them).
document.querySelectorAll("select.autosubmit").forEach(function (el) {
  el.addEventListener("change", function () { el.form.submit(); });
});
