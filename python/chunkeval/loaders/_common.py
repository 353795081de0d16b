"""What every loader shares: the ``Document`` record, HTML-to-text, whitespace rules, corpus folders."""

from __future__ import annotations

import dataclasses
import hashlib
import html.parser
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .._io import write_text_atomic

__all__ = [
    "Document",
    "corpus_id_for",
    "documents_to_corpora",
    "read_corpus_metadata",
    "write_corpus_dir",
]


@dataclasses.dataclass
class Document:
    """One clean text document.

    ``doc_id`` is derived from the content's own identifiers (CIK + form + period, PMID, a hash of
    the text), never from file order, so loading the same files again gives the same ids.
    ``metadata`` holds JSON-serialisable facts (company, journal, vendor, dates) and, where the
    loader finds them, ``sections``: a list of ``{"title", "start", "end", ...}`` character ranges of
    ``text`` (half-open ``str`` offsets).
    """

    doc_id: str
    text: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def section_text(self, index: int) -> str:
        """The text of ``metadata["sections"][index]``."""
        section = self.metadata["sections"][index]
        return self.text[section["start"]:section["end"]]


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def corpus_id_for(doc_id: str) -> str:
    """A file-name-safe corpus id for a doc id: every run of characters outside ``[A-Za-z0-9._-]`` becomes ``_``.

    >>> corpus_id_for("sec:0000320193:10-K/A:2023-09-30")
    'sec_0000320193_10-K_A_2023-09-30'
    """
    cid = re.sub(r"[^A-Za-z0-9._-]+", "_", doc_id).strip("._")
    if not cid:
        raise ValueError(f"doc_id {doc_id!r} has no letters or digits to name a corpus file; give the document an id")
    return cid


def documents_to_corpora(docs: Iterable[Document]) -> dict[str, str]:
    """``{corpus_id: text}`` in input order, ``corpus_id = corpus_id_for(doc.doc_id)``.

    Two documents with the same corpus id (the same filing or article loaded twice, or ids that
    differ only in punctuation) are a ``ValueError`` naming both positions.
    """
    corpora: dict[str, str] = {}
    first: dict[str, int] = {}
    for i, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise TypeError(f"docs: item {i} is a {type(doc).__name__}, not a chunkeval.loaders.Document")
        cid = corpus_id_for(doc.doc_id)
        if cid in corpora:
            raise ValueError(
                f"docs: items {first[cid]} and {i} both map to corpus id {cid!r} (doc_id {doc.doc_id!r}); "
                "drop the duplicate document"
            )
        first[cid] = i
        corpora[cid] = doc.text
    return corpora


def write_corpus_dir(
    docs: Sequence[Document], path: str | os.PathLike[str], *, suffix: str = ".txt"
) -> dict[str, Path]:
    """Write one UTF-8 file per document plus ``metadata.jsonl``; returns ``{corpus_id: file path}``.

    The folder is what :func:`chunkeval.datasets.load_corpora` reads (corpus id = file stem).
    Files are written byte-exact (no newline translation), so reference offsets computed on
    ``doc.text`` hold for the file's text. ``metadata.jsonl`` has one line per document:
    ``{"corpus_id", "doc_id", "file", "n_chars", "sha1", "metadata"}``.
    """
    if suffix not in (".txt", ".md"):
        raise ValueError(f"suffix must be '.txt' or '.md' (what load_corpora reads), got {suffix!r}")
    docs = list(docs)
    corpora = documents_to_corpora(docs)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    lines = []
    for (cid, text), doc in zip(corpora.items(), docs, strict=True):
        file = out / f"{cid}{suffix}"
        write_text_atomic(file, text)
        written[cid] = file
        lines.append(json.dumps(
            {"corpus_id": cid, "doc_id": doc.doc_id, "file": file.name, "n_chars": len(text), "sha1": sha1_hex(text),
             "metadata": doc.metadata},
            ensure_ascii=False, default=str,
        ))
    write_text_atomic(out / "metadata.jsonl", "".join(line + "\n" for line in lines))
    return written


def read_corpus_metadata(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{corpus_id: row}`` from the ``metadata.jsonl`` of a folder written by :func:`write_corpus_dir`."""
    file = Path(path)
    if file.is_dir():
        file = file / "metadata.jsonl"
    rows: dict[str, dict[str, Any]] = {}
    with open(file, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{file}: line {lineno} is not JSON ({exc})") from None
                rows[row["corpus_id"]] = row
    return rows


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Decode a file as UTF-8 (with or without BOM), falling back to Windows-1252 for old filings."""
    data = Path(path).read_bytes()
    return decode_bytes(data)


def decode_bytes(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --------------------------------------------------------------------------------- whitespace

# Characters that render as a space (no-break and typographic spaces) or as nothing at all.
_SPACE_LIKE = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def normalize_whitespace(text: str) -> str:
    """Collapse runs of spaces/tabs, trim lines, keep single line breaks and at most one blank line.

    Paragraphs stay separated by ``"\\n\\n"``; the result has no leading or trailing whitespace.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _SPACE_LIKE.sub(" ", text))
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


# ------------------------------------------------------------------------------- HTML to text

_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "html", "legend", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "ul",
})
_LINE_TAGS = frozenset({"br", "tr", "li", "caption"})
_CELL_TAGS = frozenset({"td", "th"})
_ALWAYS_SKIP = frozenset(
    {"script", "style", "noscript", "template", "head", "ix:header", "object", "iframe", "svg", "math"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)


class HTMLText(html.parser.HTMLParser):
    """Streaming HTML-to-text with paragraph breaks; also collects ``<title>`` and ``<meta>`` facts.

    - ``script``, ``style``, ``head``, ``ix:header`` (inline XBRL's hidden facts) and elements hidden
      with ``display:none`` are dropped, as are the tags in ``skip_tags`` and elements whose
      ``role`` is in ``skip_roles``.
    - block elements end a paragraph (``"\\n\\n"``), ``br``/``tr``/``li`` end a line, table cells are
      separated by a space; other whitespace collapses as a browser would (except in ``pre``).
    - entities are unescaped (``convert_charrefs``).
    - with ``main_content=True``, when the page has ``<main>`` or ``<article>``, only the largest
      such region's text is kept (pages wrap the report in them; menus and teasers sit outside).
    """

    def __init__(self, *, skip_tags: Iterable[str] = (), skip_roles: Iterable[str] = (),
                 skip_class_pattern: str | None = None, main_content: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_tags = _ALWAYS_SKIP | frozenset(skip_tags)
        self.skip_roles = frozenset(skip_roles)
        self.skip_class = re.compile(skip_class_pattern, re.IGNORECASE) if skip_class_pattern else None
        self.main_content = main_content
        self.meta: dict[str, str] = {}
        self.title = ""
        self.time_datetime: str | None = None
        self.first_h1 = ""
        self._parts: list[tuple[int | None, str | int]] = []  # (region, text) or (region, break size)
        self._skip: list[str] = []  # names of the open elements that started a skipped subtree
        self._skip_depth = 0
        self._in_title = False
        self._in_h1 = False
        self._pre = 0
        self._region: int | None = None
        self._region_tag = ""
        self._region_depth = 0
        self._n_regions = 0
        self._region_names: dict[int, str] = {}

    # -- helpers of handle_starttag
    def _record_meta(self, a: dict[str, str]) -> None:
        key = (a.get("property") or a.get("name") or a.get("itemprop") or "").lower()
        if key and "content" in a and key not in self.meta:
            self.meta[key] = a["content"].strip()

    def _is_skipped(self, tag: str, a: dict[str, str]) -> bool:
        """Whether an element with these attributes starts a subtree whose text is dropped."""
        return bool(
            tag in self.skip_tags
            or (a.get("role", "").lower() in self.skip_roles)
            or _HIDDEN_STYLE.search(a.get("style", ""))
            or "hidden" in a and tag not in ("input",)
            or (self.skip_class is not None and self.skip_class.search(f"{a.get('class', '')} {a.get('id', '')}"))
        )

    def _enter_region(self, tag: str) -> None:
        """A ``<main>``/``<article>`` opens: the first one starts a region, nested ones of its kind deepen it."""
        if self._region is None:
            self._region = self._n_regions
            self._region_names[self._region] = tag
            self._n_regions += 1
            self._region_tag = tag
            self._region_depth = 1
        elif tag == self._region_tag:
            self._region_depth += 1

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            self._record_meta(a)
            return
        if tag == "title":
            self._in_title = True
            return
        if tag == "time" and self.time_datetime is None and a.get("datetime"):
            self.time_datetime = a["datetime"].strip()
        if self._skip_depth:
            if tag == self._skip[-1] and tag not in _VOID_TAGS:
                self._skip_depth += 1
            return
        if self._is_skipped(tag, a):
            if tag not in _VOID_TAGS:
                self._skip.append(tag)
                self._skip_depth = 1
            return
        if self.main_content and tag in ("main", "article"):
            self._enter_region(tag)
        self._open_text_element(tag)

    def _open_text_element(self, tag: str) -> None:
        """A kept element opens: note headings and ``pre``, and the break it starts."""
        if tag == "h1" and not self.first_h1:
            self._in_h1 = True
        if tag == "pre":
            self._pre += 1
        if tag in _BLOCK_TAGS:
            self._parts.append((self._region, 2))
        elif tag in _LINE_TAGS:
            self._parts.append((self._region, 1))
        elif tag in _CELL_TAGS:
            self._parts.append((self._region, " "))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <div/>: a break, never an unclosed skipped subtree.
        if tag == "meta":
            self.handle_starttag(tag, attrs)
            return
        if self._skip_depth:
            return
        if tag in _BLOCK_TAGS:
            self._parts.append((self._region, 2))
        elif tag in _LINE_TAGS:
            self._parts.append((self._region, 1))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._skip_depth:
            if tag == self._skip[-1]:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip.pop()
            return
        if tag == "h1":
            self._in_h1 = False
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag in _BLOCK_TAGS:
            self._parts.append((self._region, 2))
        elif tag in _LINE_TAGS and tag != "br":
            self._parts.append((self._region, 1))
        elif tag in _CELL_TAGS:
            self._parts.append((self._region, " "))
        if self._region is not None and tag == self._region_tag:
            self._region_depth -= 1
            if self._region_depth == 0:
                self._region = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip_depth:
            return
        if self._in_h1:
            self.first_h1 += data
        if self._pre:
            self._parts.append((self._region, data.replace("\r\n", "\n")))
        else:
            self._parts.append((self._region, re.sub(r"[ \t\r\n\f\v]+", " ", data)))

    # -- result
    def text(self) -> str:
        parts = self._parts
        if self.main_content and self._n_regions:
            sizes: dict[int, int] = {}
            for region, part in parts:
                if region is not None and isinstance(part, str):
                    sizes[region] = sizes.get(region, 0) + len(part.strip())
            if sizes:
                # <main> is the page's own statement of where the content is; otherwise the biggest article.
                mains = [r for r in sizes if self._region_names[r] == "main"]
                pool = mains or list(sizes)
                keep = max(pool, key=lambda r: sizes[r])
                parts = [(r, p) for r, p in parts if r == keep]
        out: list[str] = []
        pending = 0
        for _, part in parts:
            if isinstance(part, int):
                pending = max(pending, part)
                continue
            if pending and part.strip():
                out.append("\n" * pending)
                pending = 0
            out.append(part)
        return normalize_whitespace("".join(out))


def html_to_text(markup: str, **options: Any) -> tuple[str, HTMLText]:
    """Clean text of an HTML document and the parser (for ``title``, ``meta``, ``first_h1``)."""
    parser = HTMLText(**options)
    parser.feed(markup)
    parser.close()
    return parser.text(), parser


def looks_like_html(text: str) -> bool:
    return re.search(r"<(html|body|div|p|table|font|span)\b", text[:20000], re.IGNORECASE) is not None
