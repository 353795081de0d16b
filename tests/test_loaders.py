"""Domain loaders on small synthetic files made here: exact text pieces, metadata and stable ids."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from chunkeval.datasets import load_corpora
from chunkeval.loaders import (
    Document,
    count_iocs,
    detect_kind,
    documents_to_corpora,
    load_documents,
    parse_edgar_submission,
    parse_jats,
    parse_medline,
    read_corpus_metadata,
    select_sections,
    write_corpus_dir,
)

# The format samples below keep real files' layout (long lines, a header's trailing tab), so their
# closing quotes carry the lint exemption.
EDGAR_SUBMISSION = """<SEC-DOCUMENT>0000123456-24-000010.txt : 20240215
<SEC-HEADER>0000123456-24-000010.hdr.sgml : 20240215
ACCESSION NUMBER:		0000123456-24-000010
CONFORMED SUBMISSION TYPE:	10-K
PUBLIC DOCUMENT COUNT:		2
CONFORMED PERIOD OF REPORT:	20231231
FILED AS OF DATE:		20240215

FILER:

	COMPANY DATA:	
		COMPANY CONFORMED NAME:			Acme Widgets, Inc.
		CENTRAL INDEX KEY:			0000123456
		STANDARD INDUSTRIAL CLASSIFICATION:	MISCELLANEOUS MANUFACTURING INDUSTRIES [3990]
		FISCAL YEAR END:			1231

	FILING VALUES:
		FORM TYPE:		10-K
		SEC ACT:		1934 Act
</SEC-HEADER>
<DOCUMENT>
<TYPE>10-K
<SEQUENCE>1
<FILENAME>acme-20231231.htm
<DESCRIPTION>10-K
<TEXT>
<XBRL>
<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL">
<head><title>acme-20231231</title><style>body{font:10pt}</style></head>
<body>
<div style="display:none"><ix:header><ix:hidden><ix:nonNumeric name="dei:AmendmentFlag">false</ix:nonNumeric></ix:hidden><ix:resources>HIDDEN-CONTEXT</ix:resources></ix:header></div>
<div><p style="text-align:center">UNITED STATES<br/>SECURITIES AND EXCHANGE COMMISSION</p>
<p>FORM 10-K</p>
<p><ix:nonNumeric name="dei:EntityRegistrantName">Acme Widgets, Inc.</ix:nonNumeric></p>
<hr style="page-break-after:always"/>
<p>TABLE OF CONTENTS</p>
<table><tr><td>Item 1.</td><td>Business</td><td>3</td></tr>
<tr><td>Item 1A.</td><td>Risk Factors</td><td>4</td></tr>
<tr><td>Item 7.</td><td>Management&#8217;s Discussion and Analysis</td><td>5</td></tr></table>
<hr/>
<p>PART I</p>
<p><b>Item 1.&#160;Business</b></p>
<p>Acme makes widgets &amp; gadgets.&nbsp;We sell
   them worldwide.</p>
<p>3</p>
<p><a href="#toc">Table of Contents</a></p>
<p><b>Item 1A. Risk Factors</b></p>
<p>Demand for widgets may fall.</p>
<script>var x = "Item 9. Not a heading";</script>
<p>PART II</p>
<p><b>ITEM 7. MANAGEMENT&#8217;S DISCUSSION AND ANALYSIS</b></p>
<p>Revenue grew 12% to $1.2 billion.</p>
<table><tr><td>Revenue</td><td>$</td><td>1,200</td></tr><tr><td>Net income</td><td>$</td><td>150</td></tr></table>
</div></body></html>
</XBRL>
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>EX-21
<SEQUENCE>2
<FILENAME>ex21.htm
<TEXT>
<html><body><p>Subsidiaries of Acme: Acme Europe GmbH</p></body></html>
</TEXT>
</DOCUMENT>
</SEC-DOCUMENT>
"""  # noqa: E501, W291

JATS_ARTICLE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.3 20210610//EN" "JATS-archivearticle1-3.dtd">
<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML" article-type="research-article">
 <front>
  <journal-meta>
   <journal-id journal-id-type="nlm-ta">J Test Med</journal-id>
   <journal-title-group><journal-title>Journal of Test Medicine</journal-title></journal-title-group>
  </journal-meta>
  <article-meta>
   <article-id pub-id-type="pmid">31234567</article-id>
   <article-id pub-id-type="pmc">6543210</article-id>
   <article-id pub-id-type="doi">10.1000/jtm.2019.42</article-id>
   <title-group><article-title>Statins and <italic>Myopathy</italic>: a cohort study</article-title></title-group>
   <pub-date pub-type="collection"><year>2020</year></pub-date>
   <pub-date pub-type="epub"><day>3</day><month>5</month><year>2019</year></pub-date>
   <abstract>
    <sec><title>Background</title><p>Statins&nbsp;cause muscle pain in some patients.</p></sec>
    <sec><title>Results</title><p>Myopathy occurred in 2.1% of 10,000 patients.</p></sec>
   </abstract>
  </article-meta>
 </front>
 <body>
  <sec id="s1">
   <title>Introduction</title>
   <p>Statins lower LDL cholesterol [<xref ref-type="bibr" rid="b1">1</xref>].
      They are widely prescribed.</p>
   <sec id="s1.1"><title>Study aims</title><p>We measured the incidence of myopathy.</p></sec>
  </sec>
  <sec id="s2">
   <title>Methods</title>
   <p>We followed a cohort of adults.</p>
   <table-wrap id="t1"><label>Table 1</label><caption><title>Baseline characteristics.</title></caption>
    <table><tr><td>Age</td><td>61</td></tr></table></table-wrap>
   <fig id="f1"><label>Figure 1</label><caption><p>Flow of participants.</p></caption><graphic xlink:href="f1.jpg"/></fig>
  </sec>
 </body>
 <back>
  <ref-list><ref id="b1"><mixed-citation>Smith J. Statins. 2001.</mixed-citation></ref></ref-list>
 </back>
</article>
"""  # noqa: E501

MEDLINE_SET = """<?xml version="1.0" ?>
<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">
<PubmedArticleSet>
 <PubmedArticle>
  <MedlineCitation Status="MEDLINE" Owner="NLM">
   <PMID Version="1">11111111</PMID>
   <Article PubModel="Print">
    <Journal><JournalIssue CitedMedium="Print"><Volume>12</Volume><PubDate><Year>2018</Year><Month>Mar</Month></PubDate></JournalIssue><Title>Annals of Examples</Title></Journal>
    <ArticleTitle>Aspirin for primary prevention.</ArticleTitle>
    <Abstract>
     <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Aspirin is debated.</AbstractText>
     <AbstractText Label="RESULTS" NlmCategory="RESULTS">Bleeding rose by 0.5% (<i>p</i> &lt; 0.01).</AbstractText>
    </Abstract>
    <ELocationID EIdType="doi" ValidYN="Y">10.1000/ae.2018.1</ELocationID>
   </Article>
  </MedlineCitation>
  <PubmedData><ArticleIdList><ArticleId IdType="pubmed">11111111</ArticleId><ArticleId IdType="pmc">PMC7000001</ArticleId></ArticleIdList></PubmedData>
 </PubmedArticle>
 <PubmedArticle>
  <MedlineCitation Status="MEDLINE" Owner="NLM">
   <PMID Version="1">22222222</PMID>
   <Article PubModel="Print">
    <Journal><JournalIssue><PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate></JournalIssue><Title>Old Journal</Title></Journal>
    <ArticleTitle>An unstructured abstract.</ArticleTitle>
    <Abstract><AbstractText>One paragraph only.</AbstractText></Abstract>
   </Article>
  </MedlineCitation>
 </PubmedArticle>
</PubmedArticleSet>
"""  # noqa: E501

THREAT_PAGE = """<!DOCTYPE html>
<html><head>
<title>SHADOWFOX analysis | Example Labs Blog</title>
<meta property="og:site_name" content="Example Labs">
<meta property="og:title" content="SHADOWFOX: a new backdoor">
<meta property="article:published_time" content="2024-03-05T09:00:00Z">
<script>window.tracking = "Buy now";</script>
<style>.x{color:red}</style>
</head>
<body>
<header><a href="/">Home</a> <a href="/blog">Blog</a></header>
<nav><ul><li>Products</li><li>Research</li></ul></nav>
<div class="cookie-banner">We use cookies. <button>Accept</button></div>
<main>
 <article>
  <h1>SHADOWFOX: a new backdoor</h1>
  <p class="byline">By the research team</p>
  <p>SHADOWFOX talks to <code>hxxps://cdn.evil[.]example/a.php</code> over HTTPS.</p>
  <h2>Indicators</h2>
  <ul><li>203.0.113.7</li><li>44d88612fea8a8f36de82e1278abb02f</li><li>CVE-2023-12345</li></ul>
  <div class="share-buttons">Share on X</div>
 </article>
 <aside>Related posts: Last year's threats</aside>
</main>
<footer>&copy; 2024 Example Labs. All rights reserved.</footer>
</body></html>
"""

# A primary 10-K document as EDGAR serves it (no SGML envelope): identity from inline XBRL cover facts.
PRIMARY_10K = """<html><head><title>x</title></head><body>
<div style="display:none"><ix:header><ix:hidden>
<ix:nonNumeric name="dei:EntityCentralIndexKey" contextRef="c">0000999888</ix:nonNumeric>
<ix:nonNumeric name="dei:DocumentFiscalYearFocus" contextRef="c">2024</ix:nonNumeric>
</ix:hidden></ix:header></div>
<p>Annual report on Form <ix:nonNumeric name="dei:DocumentType" contextRef="c">10-K</ix:nonNumeric>
for the fiscal year ended <ix:nonNumeric name="dei:DocumentPeriodEndDate" contextRef="c">June 30, 2024</ix:nonNumeric></p>
<p><ix:nonNumeric name="dei:EntityRegistrantName" contextRef="c">Beta &amp; Sons Corp</ix:nonNumeric></p>
<div><span>Item 7.</span></div>
<p>Sales were flat.</p>
</body></html>
"""  # noqa: E501


def _make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per entry, 14 pt apart, and an /Info dictionary."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    contents = []
    for lines in pages:
        ops = [b"BT /F1 11 Tf 14 TL 72 740 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("cp1252")
            ops.append(b"(" + escaped + b") Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        contents.append(add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"))
    pages_id = len(objects) + len(pages) + 1
    page_ids = [
        add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Contents %d 0 R >>" % (pages_id, font, c))
        for c in contents
    ]
    add(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % len(page_ids))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = add(b"<< /Title (" + title.encode() + b") /CreationDate (D:20240305120000Z) >>") if title else None
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


PDF_PAGES = [
    [
        "APT99 Targets the Energy Sector",
        "The threat actor known as APT99 used a new back-",
        "door called SHADOWFOX to reach the networks of several",
        "energy companies in March 2024.",
        "Indicators include the domain evil[.]example and the",
        "address 203.0.113.7, which hosted the payload for the",
        "1",
    ],
    [
        "second stage of the attack.",
        "Recommendations",
        "- Block the listed indicators at the network edge.",
        "- Hunt for SHADOWFOX on every exposed server now.",
        "2",
    ],
]
PDF_TEXT = (
    "APT99 Targets the Energy Sector\n\n"
    "The threat actor known as APT99 used a new backdoor called SHADOWFOX to reach the networks of several "
    "energy companies in March 2024.\n\n"
    "Indicators include the domain evil[.]example and the address 203.0.113.7, which hosted the payload for the "
    "second stage of the attack.\n\n"
    "Recommendations\n\n"
    "- Block the listed indicators at the network edge.\n\n"
    "- Hunt for SHADOWFOX on every exposed server now."
)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "edgar": tmp_path / "0000123456-24-000010.txt",
        "primary": tmp_path / "beta-20240630.htm",
        "jats": tmp_path / "PMC6543210.nxml",
        "medline": tmp_path / "pubmed_sample.xml",
        "page": tmp_path / "shadowfox.html",
        "pdf": tmp_path / "apt99.pdf",
        "notes": tmp_path / "notes.md",
    }
    paths["edgar"].write_text(EDGAR_SUBMISSION, encoding="utf-8")
    paths["primary"].write_text(PRIMARY_10K, encoding="utf-8")
    paths["jats"].write_text(JATS_ARTICLE, encoding="utf-8")
    paths["medline"].write_text(MEDLINE_SET, encoding="utf-8")
    paths["page"].write_text(THREAT_PAGE, encoding="utf-8")
    paths["pdf"].write_bytes(_make_pdf(PDF_PAGES, title="APT99 report"))
    paths["notes"].write_text("# Weekly notes\r\n\r\n\r\n\r\nPatch   CVE-2024-0001 now.  \r\n", encoding="utf-8")
    return paths


def test_edgar_submission(files: dict[str, Path]) -> None:
    (doc,) = load_documents(files["edgar"])
    assert doc.doc_id == "sec:0000123456:10-K:2023-12-31"
    assert doc.text == (
        "UNITED STATES\nSECURITIES AND EXCHANGE COMMISSION\n\nFORM 10-K\n\nAcme Widgets, Inc.\n\n"
        "Item 1. Business 3\nItem 1A. Risk Factors 4\nItem 7. Management\u2019s Discussion and Analysis 5\n\n"
        "PART I\n\nItem 1. Business\n\nAcme makes widgets & gadgets. We sell them worldwide.\n\n"
        "Item 1A. Risk Factors\n\nDemand for widgets may fall.\n\nPART II\n\n"
        "ITEM 7. MANAGEMENT\u2019S DISCUSSION AND ANALYSIS\n\nRevenue grew 12% to $1.2 billion.\n\n"
        "Revenue $ 1,200\nNet income $ 150"
    )
    # Hidden XBRL header, script, style, title, page number, ToC back-link and the exhibit are gone.
    for absent in ("HIDDEN-CONTEXT", "false", "Not a heading", "font:10pt", "acme-20231231", "Subsidiaries",
                   "Table of Contents"):
        assert absent not in doc.text
    meta = {k: v for k, v in doc.metadata.items() if k not in ("sections", "path")}
    assert meta == {
        "source": "sec", "company": "Acme Widgets, Inc.", "cik": "0000123456", "form": "10-K", "period": "2023-12-31",
        "fiscal_year": 2023, "filed": "2024-02-15", "accession": "0000123456-24-000010",
        "sic": "MISCELLANEOUS MANUFACTURING INDUSTRIES [3990]", "fiscal_year_end": "1231",
    }
    sections = doc.metadata["sections"]
    assert [(s["item"], s["title"]) for s in sections] == [
        ("1", "Business"), ("1A", "Risk Factors"), ("7", "MANAGEMENT\u2019S DISCUSSION AND ANALYSIS")]
    texts = [doc.text[s["start"]:s["end"]] for s in sections]
    assert texts == [
        "Item 1. Business\n\nAcme makes widgets & gadgets. We sell them worldwide.",
        "Item 1A. Risk Factors\n\nDemand for widgets may fall.",  # ends at the PART II line
        "ITEM 7. MANAGEMENT\u2019S DISCUSSION AND ANALYSIS\n\nRevenue grew 12% to $1.2 billion.\n\n"
        "Revenue $ 1,200\nNet income $ 150",
    ]
    (mdna,) = select_sections([doc], "7")
    assert mdna.doc_id == "sec:0000123456:10-K:2023-12-31#item7"
    assert mdna.text == texts[2] and mdna.metadata["parent_start"] == sections[2]["start"]
    assert doc.text[mdna.metadata["parent_start"]:].startswith(mdna.text)
    with pytest.raises(ValueError, match="not 10-K items"):
        select_sections([doc], ["99"])


def test_edgar_document_choice_and_errors() -> None:
    doc = parse_edgar_submission(EDGAR_SUBMISSION, document_type="EX-21")
    assert doc.text == "Subsidiaries of Acme: Acme Europe GmbH" and doc.metadata["sections"] == []
    with pytest.raises(ValueError, match="no document of type 'EX-99'"):
        parse_edgar_submission(EDGAR_SUBMISSION, document_type="EX-99")
    without_cik = EDGAR_SUBMISSION.replace("CENTRAL INDEX KEY:", "X:")
    with pytest.raises(ValueError, match=r"could not find \['cik'\].*cik="):
        parse_edgar_submission(without_cik)


def test_primary_htm_uses_inline_xbrl_facts(files: dict[str, Path]) -> None:
    (doc,) = load_documents(files["primary"])
    assert detect_kind(files["primary"]) == "sec"
    assert doc.doc_id == "sec:0000999888:10-K:2024-06-30"
    assert doc.text == (
        "Annual report on Form 10-K for the fiscal year ended June 30, 2024\n\nBeta & Sons Corp\n\n"
        "Item 7.\n\nSales were flat."
    )
    assert doc.metadata["company"] == "Beta & Sons Corp" and doc.metadata["fiscal_year"] == 2024
    assert doc.metadata["filed"] is None
    # A bare "Item 7." heading gets the standard title.
    assert doc.metadata["sections"] == [{
        "item": "7", "title": "Management's Discussion and Analysis of Financial Condition and Results of Operations",
        "start": doc.text.index("Item 7."), "end": len(doc.text)}]


def test_jats_article(files: dict[str, Path]) -> None:
    (doc,) = load_documents(files["jats"])
    assert doc.doc_id == "pmcid:PMC6543210"
    assert doc.text == (
        "Statins and Myopathy: a cohort study\n\nAbstract\n\nBackground\n\nStatins cause muscle pain in some patients."
        "\n\nResults\n\nMyopathy occurred in 2.1% of 10,000 patients.\n\nIntroduction\n\n"
        "Statins lower LDL cholesterol [1]. They are widely prescribed.\n\nStudy aims\n\n"
        "We measured the incidence of myopathy.\n\nMethods\n\nWe followed a cohort of adults."
    )
    assert "Smith J." not in doc.text and "Baseline" not in doc.text and "Age" not in doc.text
    meta = {k: v for k, v in doc.metadata.items() if k not in ("sections", "path")}
    assert meta == {"source": "pmc", "pmid": "31234567", "pmcid": "PMC6543210", "doi": "10.1000/jtm.2019.42",
                    "journal": "Journal of Test Medicine", "year": 2019,
                    "title": "Statins and Myopathy: a cohort study",
                    "article_type": "research-article", "has_body": True}
    sections = {s["title"]: doc.text[s["start"]:s["end"]] for s in doc.metadata["sections"]}
    assert sections["Study aims"] == "Study aims\n\nWe measured the incidence of myopathy."
    assert sections["Introduction"] == (
        "Introduction\n\nStatins lower LDL cholesterol [1]. They are widely prescribed.\n\n"
        "Study aims\n\nWe measured the incidence of myopathy.")
    assert sections["Abstract"].startswith("Abstract\n\nBackground")
    assert sections["Abstract"].endswith("10,000 patients.")
    with_captions = parse_jats(files["jats"], include_captions=True)
    assert with_captions.text.endswith(
        "We followed a cohort of adults.\n\nTable 1 Baseline characteristics.\n\nFigure 1 Flow of participants.")


def test_jats_parser_never_expands_entities_or_reaches_the_network(tmp_path: Path) -> None:
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE article [<!ENTITY boom "EXPANDED"> '
        '<!ENTITY ext SYSTEM "http://127.0.0.1:9/secret">]>'
        "<article><front><article-meta><article-id pub-id-type=\"pmid\">1</article-id>"
        "<title-group><article-title>T &boom; &ext; &amp; x</article-title></title-group>"
        "</article-meta></front></article>"
    )
    doc = parse_jats(hostile.encode())
    assert "EXPANDED" not in doc.text and "secret" not in doc.text
    assert doc.doc_id == "pmid:1" and doc.text.startswith("T ") and doc.text.endswith("& x")


def test_medline_set(files: dict[str, Path]) -> None:
    docs = load_documents(files["medline"])
    assert [d.doc_id for d in docs] == ["pmid:11111111", "pmid:22222222"]
    first, second = docs
    assert first.text == (
        "Aspirin for primary prevention.\n\nBACKGROUND: Aspirin is debated.\n\n"
        "RESULTS: Bleeding rose by 0.5% (p < 0.01)."
    )
    assert {k: v for k, v in first.metadata.items() if k != "sections"} == {
        "source": "pubmed", "pmid": "11111111", "pmcid": "PMC7000001", "doi": "10.1000/ae.2018.1",
        "journal": "Annals of Examples", "year": 2018, "title": "Aspirin for primary prevention.", "has_abstract": True}
    labels = {s["title"]: first.text[s["start"]:s["end"]] for s in first.metadata["sections"]}
    assert labels["RESULTS"] == "RESULTS: Bleeding rose by 0.5% (p < 0.01)."
    assert second.text == "An unstructured abstract.\n\nOne paragraph only."
    assert second.metadata["year"] == 1998 and second.metadata["journal"] == "Old Journal"
    with pytest.raises(ValueError, match="PubmedArticleSet"):
        parse_medline(JATS_ARTICLE.encode())


def test_threat_html_strips_boilerplate(files: dict[str, Path]) -> None:
    (doc,) = load_documents(files["page"], extract_iocs=True, source_url="https://www.example-labs.com/blog/shadowfox")
    assert doc.text == (
        "SHADOWFOX: a new backdoor\n\nBy the research team\n\n"
        "SHADOWFOX talks to hxxps://cdn.evil[.]example/a.php over HTTPS.\n\nIndicators\n\n"
        "203.0.113.7\n44d88612fea8a8f36de82e1278abb02f\nCVE-2023-12345"
    )
    for boilerplate in ("Home", "Products", "cookies", "Share on", "Related posts", "All rights", "Buy now"):
        assert boilerplate not in doc.text
    assert doc.metadata["vendor"] == "Example Labs"  # og:site_name wins over the URL's host
    assert doc.metadata["title"] == "SHADOWFOX: a new backdoor"
    assert doc.metadata["date"] == "2024-03-05"
    assert doc.metadata["iocs"] == {"cve": 1, "domain": 1, "ipv4": 1, "md5": 1, "sha1": 0, "sha256": 0, "url": 1}
    assert doc.doc_id == "threat:" + hashlib.sha1(doc.text.encode()).hexdigest()[:12]
    no_site = THREAT_PAGE.replace('<meta property="og:site_name" content="Example Labs">', "")
    files["page"].write_text(no_site, encoding="utf-8")
    (doc2,) = load_documents(files["page"], source_url="https://www.example-labs.com/blog/shadowfox")
    assert doc2.metadata["vendor"] == "example-labs.com" and doc2.doc_id == doc.doc_id
    (doc3,) = load_documents(files["page"], vendor="Acme Intel")
    assert doc3.metadata["vendor"] == "Acme Intel"


def test_threat_pdf(files: dict[str, Path]) -> None:
    (doc,) = load_documents(files["pdf"], vendor="Acme Intel", extract_iocs=True)
    assert doc.text == PDF_TEXT
    assert doc.metadata["title"] == "APT99 report" and doc.metadata["n_pages"] == 2
    assert doc.metadata["date"] == "2024-03-05"  # "March 2024" has no day; the PDF's creation date is used
    assert doc.metadata["vendor"] == "Acme Intel"
    assert doc.metadata["iocs"]["ipv4"] == 1 and doc.metadata["iocs"]["domain"] == 1
    assert doc.doc_id.startswith("threat:") and len(doc.doc_id) == len("threat:") + 12


def test_threat_markdown(files: dict[str, Path]) -> None:
    (doc,) = load_documents(files["notes"])
    assert doc.text == "# Weekly notes\n\nPatch CVE-2024-0001 now."
    assert doc.metadata["title"] == "Weekly notes" and doc.metadata["vendor"] is None


def test_count_iocs_refangs() -> None:
    text = ("hxxp://a[.]b/c and http://a.b/c; 10.0.0.1 and 10[.]0[.]0[.]1; 1.2.3.4.5 is no IP; "
            + "a" * 64 + " " + "b" * 40)
    assert count_iocs(text) == {"cve": 0, "domain": 1, "ipv4": 1, "md5": 0, "sha1": 1, "sha256": 1, "url": 1}


def test_ids_are_stable_and_corpus_dir_round_trips(files: dict[str, Path], tmp_path: Path) -> None:
    docs = load_documents(files["edgar"].parent)
    ids = [d.doc_id for d in docs]
    assert [i for i in ids if not i.startswith("threat:")] == [
        "sec:0000123456:10-K:2023-12-31", "pmcid:PMC6543210", "sec:0000999888:10-K:2024-06-30",
        "pmid:11111111", "pmid:22222222",
    ]
    assert sorted(i for i in ids if i.startswith("threat:")) == sorted(
        "threat:" + hashlib.sha1(d.text.encode()).hexdigest()[:12] for d in docs if d.metadata["source"] == "threat")
    assert len(set(ids)) == 8
    # Renamed files in another folder, loaded in another order: the same ids and texts.
    other = tmp_path / "elsewhere"
    other.mkdir()
    for i, path in enumerate(reversed(sorted(files.values()))):
        shutil.copy(path, other / f"z{i}_{path.name}")
    again = load_documents(other)
    assert sorted((d.doc_id, d.text) for d in again) == sorted((d.doc_id, d.text) for d in docs)

    corpora = documents_to_corpora(docs)
    assert list(corpora)[0] == "sec_0000123456_10-K_2023-12-31"
    written = write_corpus_dir(docs, tmp_path / "corpus")
    assert load_corpora(tmp_path / "corpus") == dict(sorted(corpora.items()))
    assert all(written[cid].read_bytes() == text.encode("utf-8") for cid, text in corpora.items())
    meta = read_corpus_metadata(tmp_path / "corpus")
    assert meta["pmid_11111111"]["doc_id"] == "pmid:11111111"
    assert meta["pmid_11111111"]["metadata"]["journal"] == "Annals of Examples"
    metadata_lines = (tmp_path / "corpus" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in metadata_lines]
    assert [r["corpus_id"] for r in rows] == list(corpora)
    with pytest.raises(ValueError, match="items 0 and 1 both map to corpus id"):
        documents_to_corpora([docs[0], Document(docs[0].doc_id, "other text")])


def test_detect_kind_and_bad_input(files: dict[str, Path], tmp_path: Path) -> None:
    assert [detect_kind(files[k]) for k in ("edgar", "primary", "jats", "medline", "page", "pdf", "notes")] == [
        "sec", "sec", "pubmed", "pubmed", "threat", "threat", "threat"]
    bad = tmp_path / "x.docx"
    bad.write_bytes(b"PK")
    with pytest.raises(ValueError, match="unsupported file type '.docx'"):
        load_documents(bad)
    with pytest.raises(ValueError, match="kind must be one of"):
        load_documents(files["pdf"], kind="word")
    with pytest.raises(ValueError, match="does not exist"):
        load_documents(tmp_path / "missing.txt")
    broken = tmp_path / "broken.xml"
    broken.write_text("<article><front>", encoding="utf-8")
    with pytest.raises(ValueError, match="not well-formed XML"):
        load_documents(broken)
