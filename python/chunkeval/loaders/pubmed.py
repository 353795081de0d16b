"""Biomedical literature: PMC Open Access JATS XML (full text) and PubMed MEDLINE XML (abstracts).

- JATS (``<article>``, what PMC's OA service and ``.nxml`` files hold): title, abstract and the
  body's sections with their titles, as plain paragraphs; the reference list and other back
  matter are left out, as are tables and figures (their captions are kept with
  ``include_captions=True``). ``doc_id`` is ``pmcid:PMC…`` (else ``pmid:…``, else ``doi:…``).
- MEDLINE (``<PubmedArticleSet>`` of ``<PubmedArticle>``, what PubMed's E-utilities and the annual
  baseline serve): one document per article: title and abstract (structured abstracts keep their
  labels: ``METHODS: …``). ``doc_id`` is ``pmid:…``.

The full text of an article and its PubMed abstract therefore get different ids and can sit in one
corpus. Metadata: ``pmid``, ``pmcid``, ``doi``, ``journal``, ``year``, ``title`` and ``sections``
(character ranges of the abstract and of every body section, nested sections included).

XML is parsed with lxml's parser locked down: no network access, no DTD loading, no entity
expansion (a document's own ``<!ENTITY>`` definitions are never expanded, which rules out
"billion laughs"); standard HTML entity names that a JATS DTD would define (``&nbsp;``) are mapped
to their characters.
"""

from __future__ import annotations

import html.entities
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._common import Document, normalize_whitespace

__all__ = ["load_pubmed", "parse_jats", "parse_medline"]

# Elements whose text is not running prose of the article.
_NEVER_TEXT = frozenset({
    "ref-list", "fn-group", "ack", "app-group", "notes", "glossary", "supplementary-material", "object-id",
    "permissions", "counts", "custom-meta-group", "alt-text", "long-desc",
})
_FLOATS = frozenset({"table-wrap", "table-wrap-group", "fig", "fig-group", "chem-struct-wrap"})
_BLOCKS = frozenset({"p", "list", "disp-quote", "boxed-text", "statement", "def-list", "verse-group", "speech",
                     "disp-formula", "preformat", "code"})


def _safe_parser() -> Any:
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )


def _local(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _entity_text(el: Any) -> str:
    name = el.text.strip("&;") if el.text else ""
    code = html.entities.name2codepoint.get(name)
    return chr(code) if code is not None else (el.text or "")


def _is_entity(el: Any) -> bool:
    from lxml import etree

    return isinstance(el, etree._Entity)


def _inline_text(el: Any, skip: frozenset[str] = frozenset()) -> str:
    """The text of ``el`` and its descendants, skipping subtrees named in ``skip`` (their tails kept)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if node.text and not _is_entity(node):
            out.append(node.text)
        for child in node:
            if _is_entity(child):
                out.append(_entity_text(child))
            else:
                name = _local(child)
                if name == "alternatives" and len(child):
                    # Alternatives are the same content in several encodings (TeX, MathML, image): take one.
                    walk(child[0])
                elif name not in skip and name not in _NEVER_TEXT:
                    walk(child)
            if child.tail:
                out.append(child.tail)

    walk(el)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _read_xml(source: str | bytes | os.PathLike[str], what: str) -> Any:
    from lxml import etree

    parser = _safe_parser()
    try:
        if isinstance(source, (bytes, bytearray)):
            return etree.fromstring(bytes(source), parser)
        if isinstance(source, str) and source.lstrip().startswith("<"):
            return etree.fromstring(source.encode("utf-8"), parser)
        return etree.parse(os.fspath(source), parser).getroot()
    except etree.XMLSyntaxError as exc:
        raise ValueError(
            f"{what}: not well-formed XML ({exc}); pass a JATS article or a PubMed MEDLINE XML file"
        ) from None


class _TextBuilder:
    """Appends paragraphs separated by blank lines and records section ranges."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.sections: list[dict[str, Any]] = []

    def paragraph(self, text: str) -> None:
        text = normalize_whitespace(text)
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        self.parts.append(text)
        self.length += len(text)

    def open_section(self, title: str, level: int) -> dict[str, Any]:
        pad = 2 if self.parts else 0
        section = {"title": title, "level": level, "start": self.length + pad, "end": self.length + pad}
        self.sections.append(section)
        return section

    def close_section(self, section: dict[str, Any]) -> None:
        section["end"] = max(section["start"], self.length)

    def text(self) -> str:
        return "".join(self.parts)


def _emit_block(el: Any, out: _TextBuilder, include_captions: bool) -> None:
    name = _local(el)
    if name == "list":
        for item in el:
            if _local(item) == "list-item":
                for child in item:
                    _emit_block(child, out, include_captions)
        return
    if name in _FLOATS:
        if include_captions:
            label = next((_inline_text(c) for c in el.iter() if _local(c) == "label"), "")
            caption = next((c for c in el.iter() if _local(c) == "caption"), None)
            caption_text = (
                " ".join(_inline_text(c) for c in caption if _local(c) in ("title", "p")) if caption is not None else ""
            )
            out.paragraph(f"{label} {caption_text}".strip())
        return
    if name in ("disp-quote", "boxed-text", "statement"):
        for child in el:
            _emit_block(child, out, include_captions)
        return
    if name in _NEVER_TEXT or name in ("label", "title"):
        return
    out.paragraph(_inline_text(el, skip=_FLOATS))
    # Tables and figures nested in a paragraph come after it.
    if include_captions:
        for child in el:
            if _local(child) in _FLOATS:
                _emit_block(child, out, include_captions)


def _emit_section(sec: Any, out: _TextBuilder, include_captions: bool, level: int) -> None:
    title_el = next((c for c in sec if _local(c) == "title"), None)
    title = _inline_text(title_el) if title_el is not None else ""
    section = out.open_section(title, level) if title else None
    if title:
        out.paragraph(title)
    for child in sec:
        name = _local(child)
        if name == "sec":
            _emit_section(child, out, include_captions, level + 1)
        elif name not in ("title", "label", "sec-meta"):
            _emit_block(child, out, include_captions)
    if section is not None:
        out.close_section(section)


def _first(root: Any, path_names: Iterable[str]) -> Any:
    """The first element reached by descending through children with these local names."""
    current = [root]
    for name in path_names:
        current = [c for el in current for c in el if _local(c) == name]
        if not current:
            return None
    return current[0]


def _year(el: Any) -> int | None:
    if el is None:
        return None
    for c in el.iter():
        if _local(c) in ("year", "Year") and c.text and c.text.strip()[:4].isdigit():
            return int(c.text.strip()[:4])
        if _local(c) == "MedlineDate" and c.text:
            m = re.search(r"\b(\d{4})\b", c.text)
            if m:
                return int(m.group(1))
    return None


def _normalize_pmcid(value: str) -> str:
    value = value.strip()
    return value if value.upper().startswith("PMC") else f"PMC{value}"


def parse_jats(source: str | bytes | os.PathLike[str], *, include_captions: bool = False) -> Document:
    """A JATS ``<article>`` (PMC OA) → :class:`Document` (title, abstract, body; no references)."""
    root = _read_xml(source, str(source)[:80] if not isinstance(source, (bytes, bytearray)) else "JATS bytes")
    if _local(root) != "article":
        raise ValueError(
            f"expected a JATS <article> root element, got <{_local(root)}>; MEDLINE sets go to parse_medline"
        )
    front = _first(root, ["front"])
    meta = _first(front, ["article-meta"]) if front is not None else None
    if meta is None:
        raise ValueError("JATS article has no <front><article-meta>; is this a JATS/NLM article?")
    pmid, pmcid, doi = _jats_ids(meta)
    journal_el = next((c for c in front.iter() if _local(c) == "journal-title"), None)
    title_el = _first(meta, ["title-group", "article-title"])
    title = _inline_text(title_el) if title_el is not None else ""
    out = _TextBuilder()
    if title:
        out.paragraph(title)
    _emit_jats_abstracts(meta, out, include_captions)
    body = _first(root, ["body"])
    if body is not None:
        for child in body:
            if _local(child) == "sec":
                _emit_section(child, out, include_captions, 1)
            else:
                _emit_block(child, out, include_captions)
    if pmcid:
        doc_id = f"pmcid:{pmcid}"
    elif pmid:
        doc_id = f"pmid:{pmid}"
    elif doi:
        doc_id = f"doi:{doi}"
    else:
        raise ValueError("JATS article has no pmc, pmid or doi <article-id>; cannot give it a stable id")
    metadata = {
        "source": "pmc",
        "pmid": pmid,
        "pmcid": pmcid,
        "doi": doi,
        "journal": _inline_text(journal_el) if journal_el is not None else None,
        "year": _jats_year(meta),
        "title": title,
        "article_type": root.get("article-type"),
        "has_body": body is not None,
        "sections": out.sections,
    }
    return Document(doc_id=doc_id, text=out.text(), metadata=metadata)


def _jats_ids(meta: Any) -> tuple[str | None, str | None, str | None]:
    """``(pmid, pmcid, doi)`` from a JATS ``<article-meta>``'s ``<article-id>`` elements (first of each kind)."""
    ids: dict[str, str] = {}
    for el in meta:
        if _local(el) == "article-id" and el.text:
            kind = (el.get("pub-id-type") or "").lower()
            ids.setdefault(kind, el.text.strip())
    raw_pmcid = ids.get("pmcid") or ids.get("pmc")
    return ids.get("pmid"), _normalize_pmcid(raw_pmcid) if raw_pmcid else None, ids.get("doi")


def _jats_year(meta: Any) -> int | None:
    """The publication year, preferring electronic over print over other ``<pub-date>`` kinds."""
    dates = [el for el in meta if _local(el) == "pub-date"]
    preference = ("epub", "ppub", "pub", "collection")

    def rank(el: Any) -> int:
        kind = (el.get("pub-type") or el.get("date-type") or "").lower()
        return preference.index(kind) if kind in preference else len(preference)

    return next((y for y in (_year(el) for el in sorted(dates, key=rank)) if y is not None), None)


def _emit_jats_abstracts(meta: Any, out: _TextBuilder, include_captions: bool) -> None:
    """Each text abstract (not graphical, teaser or table-of-contents ones) as an "Abstract" section."""
    for abstract in (el for el in meta if _local(el) == "abstract"):
        if (abstract.get("abstract-type") or "").lower() in ("graphical", "teaser", "toc"):
            continue
        section = out.open_section("Abstract", 1)
        out.paragraph("Abstract")
        for child in abstract:
            if _local(child) == "sec":
                _emit_section(child, out, include_captions, 2)
            elif _local(child) not in ("title", "label"):
                _emit_block(child, out, include_captions)
        out.close_section(section)


def parse_medline(source: str | bytes | os.PathLike[str], *, skip_without_abstract: bool = False) -> list[Document]:
    """A MEDLINE ``<PubmedArticleSet>`` → one :class:`Document` per ``<PubmedArticle>`` (title + abstract)."""
    root = _read_xml(source, str(source)[:80] if not isinstance(source, (bytes, bytearray)) else "MEDLINE bytes")
    articles = [root] if _local(root) == "PubmedArticle" else [el for el in root if _local(el) == "PubmedArticle"]
    if _local(root) not in ("PubmedArticleSet", "PubmedArticle"):
        raise ValueError(
            f"expected a <PubmedArticleSet> root element, got <{_local(root)}>; JATS articles go to parse_jats"
        )
    docs = []
    for n, art in enumerate(articles):
        citation = _first(art, ["MedlineCitation"])
        pmid_el = _first(citation, ["PMID"]) if citation is not None else None
        if pmid_el is None or not (pmid_el.text or "").strip():
            raise ValueError(f"PubmedArticle {n} has no <MedlineCitation><PMID>; every article needs one")
        pmid = pmid_el.text.strip()
        article = _first(citation, ["Article"])
        title_el = _first(article, ["ArticleTitle"]) if article is not None else None
        title = _inline_text(title_el) if title_el is not None else ""
        abstract = _first(article, ["Abstract"]) if article is not None else None
        out = _TextBuilder()
        if title:
            out.paragraph(title)
        parts = [el for el in abstract if _local(el) == "AbstractText"] if abstract is not None else []
        if not parts and skip_without_abstract:
            continue
        if parts:
            _emit_medline_abstract(parts, out)
        journal_el = _first(article, ["Journal", "Title"]) if article is not None else None
        pub_date = _first(article, ["Journal", "JournalIssue", "PubDate"]) if article is not None else None
        year = _year(pub_date) or (_year(_first(article, ["ArticleDate"])) if article is not None else None)
        ids = _medline_ids(art, article)
        docs.append(Document(
            doc_id=f"pmid:{pmid}",
            text=out.text(),
            metadata={
                "source": "pubmed",
                "pmid": pmid,
                "pmcid": _normalize_pmcid(ids["pmc"]) if ids.get("pmc") else None,
                "doi": ids.get("doi"),
                "journal": _inline_text(journal_el) if journal_el is not None else None,
                "year": year,
                "title": title,
                "has_abstract": bool(parts),
                "sections": out.sections,
            },
        ))
    return docs


def load_pubmed(
    path: str | os.PathLike[str], *, include_captions: bool = False, skip_without_abstract: bool = False
) -> list[Document]:
    """Load a JATS article (``.xml``/``.nxml``) or a MEDLINE set; the root element decides which."""
    p = Path(path)
    data = p.read_bytes()
    head = data[:5000].decode("utf-8", errors="replace")
    if re.search(r"<PubmedArticleSet\b|<PubmedArticle\b", head):
        return parse_medline(data, skip_without_abstract=skip_without_abstract)
    root_is_article = re.search(r"<article\b", head) is not None
    if not root_is_article:
        raise ValueError(f"{p}: neither a JATS <article> nor a <PubmedArticleSet>")
    doc = parse_jats(data, include_captions=include_captions)
    doc.metadata["path"] = str(p)
    return [doc]


def _emit_medline_abstract(parts: list[Any], out: _TextBuilder) -> None:
    """The ``<AbstractText>`` elements as one "Abstract" section; labelled parts are subsections."""
    whole = out.open_section("Abstract", 1)
    for el in parts:
        label = (el.get("Label") or "").strip()
        text = _inline_text(el)
        if label:
            section = out.open_section(label, 2)
            out.paragraph(f"{label}: {text}")
            out.close_section(section)
        else:
            out.paragraph(text)
    out.close_section(whole)


def _medline_ids(art: Any, article: Any) -> dict[str, str]:
    """``{id type: id}`` from ``<ArticleIdList>`` (first of each type), the DOI also from ``<ELocationID>``."""
    ids: dict[str, str] = {}
    id_list = _first(art, ["PubmedData", "ArticleIdList"])
    for el in (id_list if id_list is not None else []):
        if _local(el) == "ArticleId" and el.text:
            ids.setdefault((el.get("IdType") or "").lower(), el.text.strip())
    if "doi" not in ids and article is not None:
        for el in article:
            if _local(el) == "ELocationID" and (el.get("EIdType") or "").lower() == "doi" and el.text:
                ids["doi"] = el.text.strip()
    return ids
