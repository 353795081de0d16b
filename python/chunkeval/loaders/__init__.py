"""Domain corpus loaders: SEC 10-K filings, PubMed/PMC articles, threat-intelligence reports.

Every loader returns a list of :class:`Document` (``doc_id`` stable and derived from the content's
own identifiers, clean ``text``, ``metadata``). :func:`documents_to_corpora` turns them into
``{corpus_id: text}`` and :func:`write_corpus_dir` into a folder that
:func:`chunkeval.datasets.load_corpora` reads (one UTF-8 file per document, corpus id = file stem,
plus ``metadata.jsonl``). :func:`load_documents` loads a file or a folder, picking the loader from
the extension and the content.

The format parsers (lxml, pypdf) are imported only when a file of that kind is read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ._common import Document, corpus_id_for, documents_to_corpora, read_corpus_metadata, write_corpus_dir
from .pubmed import load_pubmed, parse_jats, parse_medline
from .sec import find_10k_sections, load_sec, parse_10k_html, parse_edgar_submission, select_sections
from .threat import count_iocs, load_threat, parse_threat_html, parse_threat_pdf, parse_threat_text

__all__ = [
    "Document",
    "corpus_id_for",
    "count_iocs",
    "detect_kind",
    "documents_to_corpora",
    "find_10k_sections",
    "load_documents",
    "load_pubmed",
    "load_sec",
    "load_threat",
    "parse_10k_html",
    "parse_edgar_submission",
    "parse_jats",
    "parse_medline",
    "parse_threat_html",
    "parse_threat_pdf",
    "parse_threat_text",
    "read_corpus_metadata",
    "select_sections",
    "write_corpus_dir",
]

KINDS = ("auto", "sec", "pubmed", "threat")
SUPPORTED_SUFFIXES = (".txt", ".htm", ".html", ".xhtml", ".xml", ".nxml", ".pdf", ".md", ".markdown")


def detect_kind(path: str | os.PathLike[str]) -> str:
    """``"sec"``, ``"pubmed"`` or ``"threat"`` for a file, from its extension and first bytes.

    ``.pdf``/``.md`` → threat; ``.xml``/``.nxml`` → pubmed; ``.txt`` → sec when it is an EDGAR
    submission (``<SEC-DOCUMENT>``/``<SEC-HEADER>``), else threat; ``.htm``/``.html`` → sec when it
    carries inline XBRL (``ix:header``, ``dei:DocumentType``), else threat.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(f"{p}: unsupported file type {suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if suffix in (".pdf", ".md", ".markdown"):
        return "threat"
    if suffix in (".xml", ".nxml"):
        return "pubmed"
    with open(p, "rb") as fh:
        head = fh.read(1 << 20).decode("utf-8", errors="replace")
    if suffix == ".txt":
        return "sec" if re.search(r"<SEC-DOCUMENT>|<SEC-HEADER>", head[:20000], re.IGNORECASE) else "threat"
    return "sec" if re.search(r"<ix:header|dei:DocumentType", head, re.IGNORECASE) else "threat"


def load_documents(
    path: str | os.PathLike[str], kind: str = "auto", *, vendor: str | None = None, source_url: str | None = None,
    include_captions: bool = False, extract_iocs: bool = False,
) -> list[Document]:
    """Load a file, or every supported file under a folder (recursively, in sorted path order).

    ``kind="auto"`` picks the loader per file with :func:`detect_kind`; ``"sec"``, ``"pubmed"`` or
    ``"threat"`` forces one. ``vendor``/``source_url``/``extract_iocs`` go to the threat loader,
    ``include_captions`` to the JATS loader. In a folder, ``metadata.jsonl`` and files of other
    types are skipped.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    p = Path(path)
    if not p.exists():
        raise ValueError(f"path {str(p)!r} does not exist")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES)
    else:
        files = [p]
    docs: list[Document] = []
    for file in files:
        file_kind = detect_kind(file) if kind == "auto" else kind
        if file_kind == "sec":
            docs += load_sec(file)
        elif file_kind == "pubmed":
            docs += load_pubmed(file, include_captions=include_captions)
        else:
            docs += load_threat(file, vendor=vendor, source_url=source_url, extract_iocs=extract_iocs)
    return docs
