"""Render second-opinion letters to HTML and to PDF (WeasyPrint).

Public API
----------
``build_letter_html(context) -> str``
    Render ``templates/letters/letter.html`` with a standalone Jinja2
    environment (autoescape on, StrictUndefined). ``context`` holds plain
    values only (str / int / list / dict). Every value is escaped as text, so
    user-entered HTML or script comes out inert. A missing *required* key
    raises ``jinja2.UndefinedError``; optional keys (institution logo/phone/
    address_lines, recipient institution/address_lines, patient sex, version,
    diagnosis/plan in question, records_reviewed, opinion.further_tests,
    reviewer credentials/specialty/institution, record dates) may be absent,
    empty or None. ``None`` never prints as "None".

``render_letter_pdf(context, *, url_fetcher=None, pdf_variant=PDF_VARIANT) -> bytes``
    HTML -> PDF. Resources are loaded only through :class:`StaticOnlyURLFetcher`
    (or the fetcher passed in, e.g. by tests that want to inspect its logs).
    PDF metadata: title "Second opinion – <case_reference>", author = reviewer
    name, subject = short description. Produces PDF/A-3b; should WeasyPrint
    reject the variant, the letter is still produced as a plain PDF and a
    warning is logged (see ``LAST_PDF_VARIANT`` below for what was used).

Static assets
-------------
The template refers to static files only via ``static_url('img/x.svg')``,
which yields the internal URL ``static:/img/x.svg``. The fetcher maps such
URLs onto ``<repo>/static/`` (after resolving symlinks and ``..``, and
checking containment) and refuses *everything* else: ``file:``, ``http(s):``,
``data:``, ``ftp:``, scheme-less/relative URLs, ``static://host/...`` forms,
paths escaping ``static/``, and file types outside a small allow-list.
``data:`` URLs are refused deliberately: the letter has no use for them and
refusing keeps the rule simple ("only files we ship").

Key images
----------
``context["key_images"]`` is a list of dicts in the shape
``imaging.services.key_images_for_letter`` returns (caption, series_label,
slice_label, window_label, png_key). The template refers to each picture as
``keyimage:<png_key>``; :class:`LetterURLFetcher` serves such a URL from the
blob store only when the key is one of those listed in the context and the
blob really is a PNG. Any other key, or any other URL, is refused.

Refusals are raised as :class:`RefusedURLError`; WeasyPrint catches fetcher
errors, logs a warning and renders without the resource, so a stray URL can
never abort letter generation nor reach the network or filesystem.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from urllib.parse import unquote

import jinja2
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from review_portal.errors import StoredFileCorrupt

LOGGER = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT / "templates"
STATIC_DIR = REPO_ROOT / "static"
TEMPLATE_NAME = "letters/letter.html"

STATIC_SCHEME = "static"
KEY_IMAGE_SCHEME = "keyimage"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Preferred PDF variant (WeasyPrint 70 supports pdf/a-1b … pdf/a-4f).
PDF_VARIANT = "pdf/a-3b"
#: Variant actually used by the most recent render_letter_pdf() call in this
#: process (``None`` means a plain PDF after a PDF/A failure). Informational.
LAST_PDF_VARIANT: str | None = None

#: File types the letter may embed from static/.
ALLOWED_STATIC_SUFFIXES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".css": "text/css",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------

def static_url(path: str) -> str:
    """Internal URL for a file under ``static/`` (e.g. ``'img/logo.svg'``).

    Only builds the string; containment is enforced by the fetcher.
    """
    return f"{STATIC_SCHEME}:/{str(path).lstrip('/')}"


def key_image_url(png_key: str) -> str:
    """Internal URL for a key image held in the blob store (served only if listed in the context)."""
    return f"{KEY_IMAGE_SCHEME}:{png_key}"


_ENV: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            # A None value (e.g. an empty nullable column) prints as nothing,
            # never as the word "None".
            finalize=lambda value: "" if value is None else value,
            trim_blocks=False,
            lstrip_blocks=False,
        )
        env.globals["static_url"] = static_url
        env.globals["key_image_url"] = key_image_url
        _ENV = env
    return _ENV


def build_letter_html(context: dict, template_name: str = TEMPLATE_NAME) -> str:
    """Render the letter template (or another PDF template under templates/letters/, such as the summary for
    the patient) to an HTML string (all values escaped)."""
    template = _environment().get_template(template_name)
    return template.render(**context)


# --------------------------------------------------------------------------
# URL fetcher
# --------------------------------------------------------------------------

class RefusedURLError(ValueError):
    """Raised by :class:`StaticOnlyURLFetcher` for any URL it will not serve."""


class StaticOnlyURLFetcher(URLFetcher):
    """WeasyPrint URL fetcher that serves ``static:/…`` files and nothing else.

    Subclasses :class:`weasyprint.urls.URLFetcher` because WeasyPrint 70
    expects a fetcher object (it reads ``_fail_on_errors`` on it) returning
    :class:`~weasyprint.urls.URLFetcherResponse`. ``fetch`` is overridden
    completely, so none of urllib's handlers (http, ftp, file, data) is ever
    reached.

    ``served`` and ``refused`` record the URLs seen, for auditing and tests.
    """

    def __init__(self, static_root: Path | str = STATIC_DIR):
        super().__init__(
            allowed_protocols=(STATIC_SCHEME,),
            allow_redirects=False,
            fail_on_errors=False,
        )
        self.static_root = Path(static_root).resolve()
        self.served: list[str] = []
        self.refused: list[str] = []

    def resolve(self, url: str) -> Path:
        """Map an internal static URL to a file path, or raise RefusedURLError."""
        if not isinstance(url, str):
            raise RefusedURLError(f"not a URL string: {url!r}")
        scheme, sep, rest = url.partition(":")
        if not sep or scheme.lower() != STATIC_SCHEME:
            raise RefusedURLError(f"only {STATIC_SCHEME}: URLs are served: {url}")
        # Drop fragment and query (e.g. SVG '#id' references).
        rest = rest.split("#", 1)[0].split("?", 1)[0]
        if rest.startswith("//"):
            raise RefusedURLError(f"authority form not allowed: {url}")
        relative = unquote(rest)
        if "\x00" in relative or "\\" in relative:
            raise RefusedURLError(f"invalid characters in path: {url}")
        relative = relative.lstrip("/")
        if not relative:
            raise RefusedURLError(f"empty path: {url}")
        candidate = (self.static_root / relative).resolve()
        if not candidate.is_relative_to(self.static_root):
            raise RefusedURLError(f"path escapes static root: {url}")
        if candidate.suffix.lower() not in ALLOWED_STATIC_SUFFIXES:
            raise RefusedURLError(f"file type not allowed: {url}")
        if not candidate.is_file():
            raise RefusedURLError(f"no such static file: {url}")
        return candidate

    def fetch(self, url, headers=None):
        try:
            path = self.resolve(url)
        except RefusedURLError:
            self.refused.append(url)
            LOGGER.warning("Letter renderer refused to fetch %r", url)
            raise
        body = path.read_bytes()
        content_type = (ALLOWED_STATIC_SUFFIXES.get(path.suffix.lower())
                        or mimetypes.guess_type(path.name)[0]
                        or "application/octet-stream")
        self.served.append(url)
        return URLFetcherResponse(url, body=body,
                                  headers={"Content-Type": content_type})


class LetterURLFetcher(StaticOnlyURLFetcher):
    """Static files as above, plus ``keyimage:<sha256>`` for the key images listed in the letter.

    ``allowed_keys`` is fixed when the fetcher is made from the letter's own context, so nothing
    a user typed can name another blob: an unlisted key is refused like any foreign URL.
    """

    def __init__(self, storage, allowed_keys, static_root: Path | str = STATIC_DIR):
        super().__init__(static_root=static_root)
        self.storage = storage
        self.allowed_keys = frozenset(allowed_keys)

    def fetch(self, url, headers=None):
        if isinstance(url, str) and url.lower().startswith(f"{KEY_IMAGE_SCHEME}:"):
            key = url[len(KEY_IMAGE_SCHEME) + 1:]
            if key not in self.allowed_keys or self.storage is None:
                self.refused.append(url)
                LOGGER.warning("Letter renderer refused key image %r", url)
                raise RefusedURLError(f"key image not listed in this letter: {url}")
            try:
                body = self.storage.read_verified(key)  # a rotted key image never goes into a signed letter
            except (OSError, ValueError, StoredFileCorrupt) as error:
                self.refused.append(url)
                raise RefusedURLError(f"key image not in storage: {url}") from error
            if not body.startswith(_PNG_MAGIC):
                self.refused.append(url)
                raise RefusedURLError(f"key image is not a PNG: {url}")
            self.served.append(url)
            return URLFetcherResponse(url, body=body, headers={"Content-Type": "image/png"})
        return super().fetch(url, headers)


def fetcher_for(context: dict, storage) -> LetterURLFetcher:
    keys = [str(image.get("png_key", "")) for image in context.get("key_images") or []]
    return LetterURLFetcher(storage, keys)


# --------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------

def _pdf_metadata(context: dict) -> tuple[str, str, str]:
    case_reference = str(context.get("case_reference", ""))
    reviewer = context.get("reviewer") or {}
    author = str(reviewer.get("name", ""))
    review_type = str(context.get("review_type_label", "")).strip()
    site = str(context.get("cancer_site_label", "")).strip()
    kind = ", ".join(part for part in (review_type, site) if part)
    subject = f"Second-opinion letter for case {case_reference}"
    if kind:
        subject += f" ({kind})"
    version = context.get("version")
    if version not in (None, ""):
        subject += f", version {version}"
    return f"Second opinion – {case_reference}", author, subject


def render_letter_pdf(context: dict, *, url_fetcher: URLFetcher | None = None,
                      pdf_variant: str | None = PDF_VARIANT, storage=None, template_name: str = TEMPLATE_NAME,
                      metadata: tuple[str, str, str] | None = None) -> bytes:
    """Render the letter to PDF bytes.

    ``url_fetcher`` defaults to a :class:`LetterURLFetcher` for this context and
    ``storage`` (static files plus the listed key images); pass
    your own instance to inspect ``served`` / ``refused`` afterwards.
    ``template_name`` and ``metadata`` (title, author, subject) let another document (the summary for the
    patient) share the same PDF/A output and URL-fetcher rules.
    """
    global LAST_PDF_VARIANT
    html_string = build_letter_html(context, template_name)
    fetcher = url_fetcher if url_fetcher is not None else fetcher_for(context, storage)
    # base_url is deliberately None: the template only uses absolute
    # static:/ URLs, and anything relative is dropped by WeasyPrint.
    html = HTML(string=html_string, base_url=None, url_fetcher=fetcher)
    title, author, subject = metadata if metadata is not None else _pdf_metadata(context)

    def _render(variant: str | None) -> bytes:
        # Tagged PDF (structure tree) for screen readers, as far as WeasyPrint builds one.
        options = {"pdf_variant": variant, "pdf_tags": True} if variant else {"pdf_tags": True}
        document = html.render(**options)
        metadata = document.metadata
        metadata.title = title
        metadata.authors = [author] if author else []
        metadata.description = subject
        metadata.lang = metadata.lang or "en-GB"
        return document.write_pdf(**options)

    if pdf_variant:
        try:
            pdf = _render(pdf_variant)
            LAST_PDF_VARIANT = pdf_variant
            return pdf
        except Exception:  # noqa: BLE001 - fall back to a plain PDF
            LOGGER.warning("PDF variant %s failed; rendering a plain PDF",
                           pdf_variant, exc_info=True)
    pdf = _render(None)
    LAST_PDF_VARIANT = None
    return pdf
