"""SEC annual reports (10-K): EDGAR full-submission ``.txt`` files and ``.htm`` primary documents.

A full submission is an SGML envelope: a header (``COMPANY CONFORMED NAME``, ``CENTRAL INDEX KEY``,
``CONFORMED PERIOD OF REPORT``, ``FILED AS OF DATE``, ``FORM TYPE`` …) and one ``<DOCUMENT>`` per
file of the filing (the 10-K itself, exhibits, XBRL, images). The loader takes the document whose
``<TYPE>`` is the annual report, turns its HTML into clean text (dropping tags, scripts, styles and
the hidden inline-XBRL header, unescaping entities, keeping paragraph breaks) and finds the
"Item 1.", "Item 1A.", "Item 7." … headings, whose character ranges go into
``metadata["sections"]`` so that a study can be restricted to, say, Item 7 (MD&A) with
:func:`select_sections`.

A primary ``.htm`` document (what EDGAR's "Documents" link serves) has no SGML header; company,
CIK, form and period then come from its inline XBRL cover facts (``dei:EntityRegistrantName``,
``dei:EntityCentralIndexKey``, ``dei:DocumentType``, ``dei:DocumentPeriodEndDate``), or from the
keyword arguments.

``doc_id`` is ``sec:{cik}:{form}:{period}`` (``cik`` zero-padded to 10 digits, ``period``
``YYYY-MM-DD``): the identity of the filing, whatever the file is called.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._common import Document, html_to_text, looks_like_html, normalize_whitespace, read_text_file

__all__ = [
    "TEN_K_ITEMS",
    "find_10k_sections",
    "load_sec",
    "parse_10k_html",
    "parse_edgar_submission",
    "select_sections",
]

# The items of Form 10-K (Regulation S-K) and their standard titles, used when a heading gives only
# the number ("Item 7." on its own line) and to ignore lines such as "Item 99" that are no heading.
TEN_K_ITEMS: dict[str, str] = {
    "1": "Business",
    "1A": "Risk Factors",
    "1B": "Unresolved Staff Comments",
    "1C": "Cybersecurity",
    "2": "Properties",
    "3": "Legal Proceedings",
    "4": "Mine Safety Disclosures",
    "5": "Market for Registrant's Common Equity, Related Stockholder Matters and Issuer Purchases of Equity Securities",
    "6": "[Reserved]",
    "7": "Management's Discussion and Analysis of Financial Condition and Results of Operations",
    "7A": "Quantitative and Qualitative Disclosures About Market Risk",
    "8": "Financial Statements and Supplementary Data",
    "9": "Changes in and Disagreements with Accountants on Accounting and Financial Disclosure",
    "9A": "Controls and Procedures",
    "9B": "Other Information",
    "9C": "Disclosure Regarding Foreign Jurisdictions that Prevent Inspections",
    "10": "Directors, Executive Officers and Corporate Governance",
    "11": "Executive Compensation",
    "12": "Security Ownership of Certain Beneficial Owners and Management and Related Stockholder Matters",
    "13": "Certain Relationships and Related Transactions, and Director Independence",
    "14": "Principal Accountant Fees and Services",
    "15": "Exhibits and Financial Statement Schedules",
    "16": "Form 10-K Summary",
}

_HEADER_FIELDS = {
    "company": "COMPANY CONFORMED NAME",
    "cik": "CENTRAL INDEX KEY",
    "period": "CONFORMED PERIOD OF REPORT",
    "filed": "FILED AS OF DATE",
    "form": "FORM TYPE",
    "submission_type": "CONFORMED SUBMISSION TYPE",
    "accession": "ACCESSION NUMBER",
    "fiscal_year_end": "FISCAL YEAR END",
    "sic": "STANDARD INDUSTRIAL CLASSIFICATION",
}

_ITEM_HEADING = re.compile(
    r"^[ \t]*item[ \t]*(\d{1,2}[a-d]?)[ \t]*(?:[.:\u2013\u2014-][ \t]*)?(.*)$", re.IGNORECASE | re.MULTILINE
)
_PART_HEADING = re.compile(
    r"^[ \t]*(?:part[ \t]+(?:i{1,3}|iv)\b[^\n]{0,80}|signatures?)[ \t]*$", re.IGNORECASE | re.MULTILINE
)
_PAGE_ARTIFACT = re.compile(
    r"^(?:\d{1,3}|i{1,3}|iv|vi{0,3}|ix|xi{0,3}|F-\d{1,3}|page \d{1,3}(?: of \d{1,3})?"
    r"|table of contents|index to financial statements)$",
    re.IGNORECASE,
)
_MAX_HEADING_TITLE = 160


def _parse_date(value: str) -> str | None:
    """``20230930``, ``2023-09-30`` or ``September 30, 2023`` → ``2023-09-30``."""
    value = re.sub(r"\s+", " ", html.unescape(value)).strip().replace("Sept.", "Sep.").replace("Sept ", "Sep ")
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%B %d, %Y", "%B %d %Y", "%b %d, %Y", "%b. %d, %Y", "%m/%d/%Y", "%d %B %Y"):
        try:
            return _dt.datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def _normalize_cik(value: str) -> str:
    digits = re.sub(r"\D", "", str(value))
    if not digits:
        raise ValueError(f"cik {value!r} has no digits; a Central Index Key is a number such as 320193")
    return digits.zfill(10)


def _normalize_form(value: str) -> str:
    return re.sub(r"\s+", "", str(value)).upper()


def _drop_page_artifacts(text: str) -> str:
    # Page numbers and the "Table of Contents" back-links repeated at every page break of EDGAR HTML.
    lines = [line for line in text.split("\n") if not _PAGE_ARTIFACT.match(line.strip())]
    return normalize_whitespace("\n".join(lines))


def find_10k_sections(text: str) -> list[dict[str, Any]]:
    """Character ranges of the "Item N." sections of a 10-K's clean text.

    A heading is a line that starts with ``Item <number>`` (a known 10-K item, see
    :data:`TEN_K_ITEMS`) and is short. The table of contents repeats every heading, so for each item
    the occurrence followed by the most text (up to the next heading) is taken. A section runs from
    its heading line to the next section's heading, or to an intervening ``PART …`` /
    ``SIGNATURES`` line, or to the end of the text.

    Returns ``[{"item": "7", "title": ..., "start": int, "end": int}, ...]`` sorted by ``start``.
    """
    matches = []
    for m in _ITEM_HEADING.finditer(text):
        item = m.group(1).upper()
        title = m.group(2).strip()
        if item not in TEN_K_ITEMS or len(title) > _MAX_HEADING_TITLE:
            continue
        matches.append((m.start(), m.end(), item, title))
    if not matches:
        return []
    best: dict[str, tuple[int, int, int, str]] = {}
    for i, (start, line_end, item, title) in enumerate(matches):
        following = (matches[i + 1][0] if i + 1 < len(matches) else len(text)) - line_end
        if item not in best or following > best[item][0]:
            best[item] = (following, start, line_end, title)
    chosen = sorted((start, line_end, item, title) for item, (_, start, line_end, title) in best.items())
    boundaries = [m.start() for m in _PART_HEADING.finditer(text)]
    sections: list[dict[str, Any]] = []
    for i, (start, line_end, item, title) in enumerate(chosen):
        end = chosen[i + 1][0] if i + 1 < len(chosen) else len(text)
        for b in boundaries:
            if line_end < b < end:
                end = b
                break
        body_title = re.sub(r"\s+", " ", title).strip().rstrip(".").strip()
        sections.append({"item": item, "title": body_title or TEN_K_ITEMS[item], "start": start, "end": end})
    for s in sections:
        # Trailing blank lines belong to no section.
        while s["end"] > s["start"] and text[s["end"] - 1].isspace():
            s["end"] -= 1
    return sections


def _xbrl_fact(markup: str, name: str) -> str | None:
    m = re.search(
        r"<ix:nonnumeric\b[^>]*\bname\s*=\s*[\"']" + re.escape(name) + r"[\"'][^>]*>(.*?)</ix:nonnumeric>",
        markup, re.IGNORECASE | re.DOTALL,
    )
    if m is None:
        return None
    value = html.unescape(re.sub(r"<[^>]+>", "", m.group(1)))
    return re.sub(r"\s+", " ", value).strip() or None


def _build(text: str, facts: dict[str, Any], source: str | None, drop_page_artifacts: bool) -> Document:
    if drop_page_artifacts:
        text = _drop_page_artifacts(text)
    missing = [k for k in ("cik", "form", "period") if not facts.get(k)]
    if missing:
        raise ValueError(
            f"{source or 'filing'}: could not find {missing} in the filing; pass them as keyword arguments "
            "(e.g. load_sec(path, cik='320193', form='10-K', period='2023-09-30'))"
        )
    cik = _normalize_cik(facts["cik"])
    form = _normalize_form(facts["form"])
    period = _parse_date(str(facts["period"]))
    if period is None:
        raise ValueError(f"{source or 'filing'}: period {facts['period']!r} is not a date; pass period='YYYY-MM-DD'")
    filed = _parse_date(str(facts["filed"])) if facts.get("filed") else None
    fiscal_year = facts.get("fiscal_year")
    metadata: dict[str, Any] = {
        "source": "sec",
        "company": facts.get("company"),
        "cik": cik,
        "form": form,
        "period": period,
        "fiscal_year": int(fiscal_year) if fiscal_year else int(period[:4]),
        "filed": filed,
    }
    for key in ("accession", "sic", "fiscal_year_end"):
        if facts.get(key):
            metadata[key] = facts[key]
    if source:
        metadata["path"] = source
    metadata["sections"] = find_10k_sections(text)
    return Document(doc_id=f"sec:{cik}:{form}:{period}", text=text, metadata=metadata)


def parse_10k_html(
    markup: str, *, company: str | None = None, cik: str | None = None, form: str | None = None,
    period: str | None = None, filed: str | None = None, source: str | None = None, drop_page_artifacts: bool = True,
) -> Document:
    """A 10-K primary HTML document (inline XBRL or plain HTML) → :class:`Document`.

    Identity facts come from the keyword arguments, else from the inline XBRL cover facts.
    """
    facts: dict[str, Any] = {
        "company": company or _xbrl_fact(markup, "dei:EntityRegistrantName"),
        "cik": cik or _xbrl_fact(markup, "dei:EntityCentralIndexKey"),
        "form": form or _xbrl_fact(markup, "dei:DocumentType"),
        "period": period or _xbrl_fact(markup, "dei:DocumentPeriodEndDate"),
        "filed": filed,
    }
    fiscal_year = _xbrl_fact(markup, "dei:DocumentFiscalYearFocus")
    if fiscal_year and fiscal_year.isdigit():
        facts["fiscal_year"] = fiscal_year
    text, _ = html_to_text(markup)
    return _build(text, facts, source, drop_page_artifacts)


def _header_value(header: str, label: str) -> str | None:
    m = re.search(r"^[ \t]*" + re.escape(label) + r":[ \t]*(.+?)[ \t]*$", header, re.MULTILINE)
    return m.group(1) if m else None


def parse_edgar_submission(
    raw: str, *, source: str | None = None, document_type: str | None = None, drop_page_artifacts: bool = True,
) -> Document:
    """An EDGAR full-submission text file → :class:`Document` of its annual-report document.

    The document taken is the first ``<DOCUMENT>`` whose ``<TYPE>`` equals ``document_type``
    (default: the header's ``CONFORMED SUBMISSION TYPE``, e.g. ``10-K``; else any type starting
    with ``10-K``). Its ``<TEXT>`` is converted from HTML when it is HTML, and whitespace-normalised
    when it is the plain text of older filings.
    """
    header_match = re.search(r"<SEC-HEADER>(.*?)</SEC-HEADER>", raw, re.DOTALL | re.IGNORECASE)
    if header_match is None:
        header_match = re.search(r"^(.*?)(?=<DOCUMENT>)", raw, re.DOTALL)
    header = header_match.group(1) if header_match else ""
    facts: dict[str, Any] = {key: _header_value(header, label) for key, label in _HEADER_FIELDS.items()}
    wanted = _normalize_form(document_type or facts.get("submission_type") or facts.get("form") or "10-K")
    documents = re.findall(r"<DOCUMENT>(.*?)</DOCUMENT>", raw, re.DOTALL | re.IGNORECASE)
    if not documents:
        raise ValueError(f"{source or 'submission'}: no <DOCUMENT> blocks; is this an EDGAR full-submission .txt file?")
    types = []
    chosen = None
    for block in documents:
        m = re.search(r"<TYPE>[ \t]*([^\n<]+)", block, re.IGNORECASE)
        doc_type = _normalize_form(m.group(1)) if m else ""
        types.append(doc_type)
        if chosen is None and doc_type == wanted:
            chosen = block
    if chosen is None and document_type is None:
        chosen = next((b for b, t in zip(documents, types, strict=True) if t.startswith("10-K")), None)
    if chosen is None:
        raise ValueError(
            f"{source or 'submission'}: no document of type {wanted!r} among {types}; pass document_type= to pick one"
        )
    if not facts.get("form"):
        facts["form"] = types[documents.index(chosen)]
    text_match = re.search(r"<TEXT>(.*?)(?:</TEXT>|$)", chosen, re.DOTALL | re.IGNORECASE)
    body = text_match.group(1) if text_match else chosen
    body = re.sub(r"^\s*</?(XBRL|XML|PDF)>\s*|\s*</?(XBRL|XML|PDF)>\s*$", "", body, flags=re.IGNORECASE)
    if looks_like_html(body):
        if not facts.get("company"):
            facts["company"] = _xbrl_fact(body, "dei:EntityRegistrantName")
        text, _ = html_to_text(body)
    else:
        text = normalize_whitespace(body)
    return _build(text, facts, source, drop_page_artifacts)


def load_sec(
    path: str | os.PathLike[str], *, company: str | None = None, cik: str | None = None, form: str | None = None,
    period: str | None = None, filed: str | None = None, drop_page_artifacts: bool = True,
) -> list[Document]:
    """Load one 10-K file: an EDGAR full-submission ``.txt`` or a primary ``.htm``/``.html`` document.

    Keyword arguments override what the file says (and are needed for an ``.htm`` without inline
    XBRL cover facts). Returns a one-element list, like every loader.
    """
    p = Path(path)
    raw = read_text_file(p)
    if re.search(r"<SEC-DOCUMENT>|<SEC-HEADER>|<DOCUMENT>", raw[:200000], re.IGNORECASE):
        doc = parse_edgar_submission(raw, source=str(p), drop_page_artifacts=drop_page_artifacts)
        overrides = {"company": company, "cik": cik, "form": form, "period": period, "filed": filed}
        if any(v is not None for v in overrides.values()):
            facts = {k: doc.metadata.get(k) for k in ("company", "cik", "form", "period", "filed")}
            facts.update({k: v for k, v in overrides.items() if v is not None})
            doc = _build(doc.text, facts, str(p), False)
        return [doc]
    if not looks_like_html(raw):
        raise ValueError(f"{p}: neither an EDGAR submission (<SEC-DOCUMENT>) nor HTML; pass a 10-K .txt or .htm file")
    return [parse_10k_html(raw, company=company, cik=cik, form=form, period=period, filed=filed, source=str(p),
                           drop_page_artifacts=drop_page_artifacts)]


def select_sections(docs: Iterable[Document], items: Sequence[str] | str) -> list[Document]:
    """One new document per requested 10-K item found: its text is the section's text.

    ``doc_id`` becomes ``{doc_id}#item{item}`` (e.g. ``sec:0000320193:10-K:2023-09-30#item7``);
    metadata keeps the filing's facts plus ``item``, ``item_title``, ``parent_doc_id`` and
    ``parent_start`` (the section's offset in the full text, to map offsets back). Documents
    without the item are skipped.
    """
    wanted = [items.upper()] if isinstance(items, str) else [str(i).upper() for i in items]
    unknown = [i for i in wanted if i not in TEN_K_ITEMS]
    if unknown:
        raise ValueError(f"items: {unknown} are not 10-K items; use e.g. '1A' or '7' (known: {list(TEN_K_ITEMS)})")
    out = []
    for doc in docs:
        by_item = {s["item"]: s for s in doc.metadata.get("sections", [])}
        for item in wanted:
            section = by_item.get(item)
            if section is None:
                continue
            metadata = {k: v for k, v in doc.metadata.items() if k != "sections"}
            metadata.update({"item": item, "item_title": section["title"], "parent_doc_id": doc.doc_id,
                             "parent_start": section["start"]})
            out.append(Document(f"{doc.doc_id}#item{item}", doc.text[section["start"]:section["end"]], metadata))
    return out
