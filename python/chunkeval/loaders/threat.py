"""Threat-intelligence reports: PDF, HTML pages, plain text and Markdown.

- PDF (pypdf): pages joined in order; hard line breaks inside a paragraph are rejoined, words
  hyphenated across a line break ("back-\\ndoor") are mended, page numbers dropped, paragraph breaks
  (blank lines, short lines ending a sentence, headings) kept as ``"\\n\\n"``.
- HTML: the page's boilerplate goes (``nav``, ``header``, ``footer``, ``aside``, forms, scripts,
  styles, cookie/share/newsletter widgets); when the page has ``<main>``/``<article>``, only that
  region's text is kept.
- text/Markdown: whitespace-normalised as is.

Metadata: ``vendor`` (the ``vendor=`` argument, else the page's ``og:site_name``, else the host of
``source_url`` without ``www.``), ``title``, ``date`` (ISO ``YYYY-MM-DD`` when found in the page's
metadata or near the top of the text), ``source_url``, and with ``extract_iocs=True`` the number of
distinct indicators of compromise by type (defanged forms such as ``hxxp`` and ``[.]`` count).
``doc_id`` is ``threat:{sha1(text)[:12]}``: the same report text always gets the same id.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ._common import Document, html_to_text, normalize_whitespace, read_text_file, sha1_hex

__all__ = ["count_iocs", "load_threat", "parse_threat_html", "parse_threat_pdf", "parse_threat_text"]

_BOILERPLATE_TAGS = ("nav", "header", "footer", "aside", "form", "button", "dialog", "menu")
_BOILERPLATE_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search", "dialog")
_BOILERPLATE_CLASS = (
    r"(?:^|[\s_-])(?:cookie|consent|newsletter|subscribe|share|social|breadcrumbs?|skip-link)(?:$|[\s_-])"
)

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), "ymd"),
    (re.compile(rf"\b({_MONTHS}|{'|'.join(m[:3] for m in _MONTHS.split('|'))})\.? (\d{{1,2}}),? (\d{{4}})\b"), "mdy"),
    (re.compile(rf"\b(\d{{1,2}}) ({_MONTHS}) (\d{{4}})\b"), "dmy"),
)

_IOC_PATTERNS = {
    "ipv4": re.compile(
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]*\d)"
    ),
    "url": re.compile(r"\bhttps?://[^\s<>\"'()\[\]]+", re.IGNORECASE),
    "md5": re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])"),
    "sha1": re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{40}(?![0-9A-Fa-f])"),
    "sha256": re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])"),
    "cve": re.compile(r"\bCVE-\d{4}-\d{4,7}\b", re.IGNORECASE),
}
# Written defanged ("evil[.]example"), a host name is an indicator, not prose.
_HOST_LABEL = r"[A-Za-z0-9-]+"
_DEFANGED_DOMAIN = re.compile(
    rf"\b{_HOST_LABEL}(?:(?:\.|\[\.\]){_HOST_LABEL})*\[\.\]{_HOST_LABEL}(?:(?:\.|\[\.\]){_HOST_LABEL})*"
)


def count_iocs(text: str) -> dict[str, int]:
    """Distinct indicators of compromise by type: ipv4, url, domain (defanged), md5, sha1, sha256, cve."""
    refanged = re.sub(r"\bhxxp", "http", text, flags=re.IGNORECASE)
    refanged = refanged.replace("[.]", ".").replace("(.)", ".").replace("[:]", ":").replace("[://]", "://")
    counts = {}
    for name, pattern in _IOC_PATTERNS.items():
        found = {m.group(0).rstrip(".,;").lower() for m in pattern.finditer(refanged)}
        counts[name] = len(found)
    hosts = {m.group(0).replace("[.]", ".").lower() for m in _DEFANGED_DOMAIN.finditer(text)}
    # A defanged IP address (10[.]0[.]0[.]1) is counted as ipv4 above, not as a domain.
    counts["domain"] = len({h for h in hosts if not re.fullmatch(r"[\d.]+", h)})
    return dict(sorted(counts.items()))


def _find_date(text: str) -> str | None:
    """The earliest-placed date in ``text`` as ``YYYY-MM-DD``."""
    best: tuple[int, str] | None = None
    for pattern, order in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            try:
                if order == "ymd":
                    date = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                elif order == "mdy":
                    month = _month_number(m.group(1))
                    date = _dt.date(int(m.group(3)), month, int(m.group(2)))
                else:
                    date = _dt.date(int(m.group(3)), _month_number(m.group(2)), int(m.group(1)))
            except ValueError:
                continue
            if best is None or m.start() < best[0]:
                best = (m.start(), date.isoformat())
            break
    return best[1] if best else None


def _month_number(name: str) -> int:
    return [m[:3].lower() for m in _MONTHS.split("|")].index(name[:3].lower()) + 1


def _vendor_from_url(url: str | None) -> str | None:
    if not url:
        return None
    host = urlparse(url).hostname
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


def _finish(text: str, metadata: dict[str, Any], extract_iocs: bool) -> Document:
    if not text:
        raise ValueError(
            f"{metadata.get('path') or 'report'}: no text left after cleaning; is it a scanned PDF or an empty page?"
        )
    if metadata.get("date") is None:
        metadata["date"] = _find_date(text[:3000])
    if extract_iocs:
        metadata["iocs"] = count_iocs(text)
    metadata["n_chars"] = len(text)
    return Document(doc_id=f"threat:{sha1_hex(text)[:12]}", text=text, metadata=metadata)


def parse_threat_text(
    text: str, *, vendor: str | None = None, title: str | None = None, date: str | None = None,
    source_url: str | None = None, extract_iocs: bool = False,
) -> Document:
    """Plain text or Markdown → :class:`Document`; the title defaults to the first heading or line."""
    clean = normalize_whitespace(text)
    if title is None:
        heading = re.search(r"^#{1,6}[ \t]+(.+)$", clean, re.MULTILINE)
        title = heading.group(1).strip() if heading else (clean.split("\n", 1)[0].strip() or None)
    metadata = {"source": "threat", "format": "text", "vendor": vendor or _vendor_from_url(source_url), "title": title,
                "date": date, "source_url": source_url}
    return _finish(clean, metadata, extract_iocs)


def parse_threat_html(
    markup: str, *, vendor: str | None = None, title: str | None = None, date: str | None = None,
    source_url: str | None = None, extract_iocs: bool = False,
) -> Document:
    """An HTML report page → :class:`Document` without navigation, headers, footers and widgets."""
    text, page = html_to_text(
        markup, skip_tags=_BOILERPLATE_TAGS, skip_roles=_BOILERPLATE_ROLES, skip_class_pattern=_BOILERPLATE_CLASS,
        main_content=True,
    )
    meta = page.meta
    source_url = source_url or meta.get("og:url") or None
    page_title = meta.get("og:title") or page.first_h1.strip() or page.title.strip() or None
    page_date = date
    if page_date is None:
        for key in ("article:published_time", "datepublished", "date", "citation_publication_date", "dc.date"):
            if meta.get(key):
                page_date = _find_date(meta[key])
                if page_date:
                    break
    if page_date is None and page.time_datetime:
        page_date = _find_date(page.time_datetime)
    metadata = {
        "source": "threat",
        "format": "html",
        "vendor": vendor or meta.get("og:site_name") or _vendor_from_url(source_url),
        "title": title or (re.sub(r"\s+", " ", page_title).strip() if page_title else None),
        "date": page_date,
        "source_url": source_url,
    }
    return _finish(text, metadata, extract_iocs)


_PAGE_NUMBER = re.compile(r"^(?:page\s+)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?$", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[•▪●◦‣∙*-]|\d{1,2}[.)])\s")
_SENTENCE_END = re.compile(r"[.!?:;\"”’)]$")


def _page_lines(page: str) -> list[str]:
    """A page's lines, spaces collapsed, page numbers and leading/trailing blank lines dropped."""
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in page.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if not _PAGE_NUMBER.match(line)]
    # The page's own first and last line breaks say nothing about paragraphs.
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def _reflow_pdf_lines(pages: list[str]) -> str:
    """Join a PDF's text lines into paragraphs (see the module docstring for the rules)."""
    page_lines = [_page_lines(page) for page in pages]
    lengths = sorted(len(line) for lines in page_lines for line in lines if line)
    if not lengths:
        return ""
    # The width of a full line: lines clearly shorter than it end a paragraph or are headings.
    full = lengths[int(0.9 * (len(lengths) - 1))]
    paragraphs: list[str] = []
    current = ""
    ends_paragraph = True

    def flush() -> None:
        nonlocal current
        if current:
            paragraphs.append(current)
        current = ""

    for lines in page_lines:
        for line in lines:
            if not line:
                flush()
                ends_paragraph = True
                continue
            if _BULLET.match(line):
                flush()
            if current and re.search(r"[A-Za-z]-$", current) and line[:1].islower():
                current = current[:-1] + line
            elif current:
                current += " " + line
            else:
                current = line
            short = len(line) < 0.7 * full
            ends_paragraph = short or (_SENTENCE_END.search(line) is not None and len(line) < 0.85 * full)
            if ends_paragraph:
                flush()
        # A page break inside a sentence continues the paragraph; otherwise it ends one.
        if current and _SENTENCE_END.search(current):
            flush()
    flush()
    return normalize_whitespace("\n\n".join(paragraphs))


def parse_threat_pdf(
    path: str | os.PathLike[str], *, vendor: str | None = None, title: str | None = None, date: str | None = None,
    source_url: str | None = None, extract_iocs: bool = False,
) -> Document:
    """A PDF report → :class:`Document` (text layer only; a scanned PDF without one is an error)."""
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading PDF reports needs pypdf: pip install 'chunkeval[loaders]'") from None
    reader = PdfReader(os.fspath(path))
    pages = [page.extract_text() or "" for page in reader.pages]
    text = _reflow_pdf_lines(pages)
    info = reader.metadata  # the document information dictionary, absent in some PDFs
    pdf_title = (str(info.get("/Title") or "").strip() or None) if info is not None else None
    pdf_date = None
    raw_date = str(info.get("/CreationDate") or "") if info is not None else ""
    m = re.match(r"D:(\d{4})(\d{2})(\d{2})", raw_date)
    if m:
        try:
            pdf_date = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            pdf_date = None
    metadata = {
        "source": "threat",
        "format": "pdf",
        "vendor": vendor or _vendor_from_url(source_url),
        "title": title or pdf_title or (text.split("\n", 1)[0].strip() if text else None),
        "date": date or _find_date(text[:3000]) or pdf_date,
        "source_url": source_url,
        "path": str(path),
        "n_pages": len(pages),
    }
    return _finish(text, metadata, extract_iocs)


def load_threat(
    path: str | os.PathLike[str], *, vendor: str | None = None, title: str | None = None, date: str | None = None,
    source_url: str | None = None, extract_iocs: bool = False,
) -> list[Document]:
    """Load one report by extension: ``.pdf``, ``.htm``/``.html``, or text (``.txt``, ``.md``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".pdf":
        return [parse_threat_pdf(p, vendor=vendor, title=title, date=date, source_url=source_url,
                                 extract_iocs=extract_iocs)]
    raw = read_text_file(p)
    parse = parse_threat_html if suffix in (".htm", ".html", ".xhtml") else parse_threat_text
    doc = parse(raw, vendor=vendor, title=title, date=date, source_url=source_url, extract_iocs=extract_iocs)
    doc.metadata["path"] = str(p)
    return [doc]
