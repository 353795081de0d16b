"""The LangChain, LlamaIndex and chonkie adapters, with the real packages: spec round trips, spans
checked against the library's own chunks, relocation of wrong offsets on repeated text (against an
independent oracle), and the property harness."""

from __future__ import annotations

import logging
import random

import pytest

pytest.importorskip("langchain_text_splitters")
pytest.importorskip("llama_index.core")
pytest.importorskip("chonkie")

from chonkie import RecursiveChunker, SentenceChunker, TokenChunker  # noqa: E402
from langchain_text_splitters import CharacterTextSplitter, RecursiveCharacterTextSplitter  # noqa: E402
from llama_index.core import Document  # noqa: E402
from llama_index.core.node_parser import SentenceSplitter, TokenTextSplitter  # noqa: E402

from chunkeval.chunkers import (  # noqa: E402
    LibraryChunker,
    chunk_texts,
    from_chonkie,
    from_langchain,
    from_llamaindex,
    get_chunker,
)
from chunkeval.testing import check_chunker  # noqa: E402


def pairs(chunker: LibraryChunker, text: str) -> list[tuple[int, int]]:
    spans = chunker.chunk([text])
    return list(zip(spans.start.tolist(), spans.end.tolist(), strict=True))


def langchain_truth(splitter: RecursiveCharacterTextSplitter, text: str) -> list[tuple[int, int]]:
    """The true spans, from an independent route: LangChain splits on separators and lengths only, so
    the same splitter on a copy of ``text`` whose every non-separator character is made unique
    yields the same chunk positions, and there each chunk's text occurs once, so LangChain's own
    start_index is right. Whitespace-only chunks are dropped, as chunkeval does."""
    unique = "".join(c if c in " \n" else chr(0x4E00 + i) for i, c in enumerate(text))
    docs = splitter.create_documents([unique])
    spans = [(d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content)) for d in docs]
    assert all(unique[s:e] == d.page_content for (s, e), d in zip(spans, docs, strict=True))
    return sorted((s, e) for s, e in spans if text[s:e].strip())


# -- specs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "settings"),
    [
        ("langchain:RecursiveCharacterTextSplitter:chunk_size=400,chunk_overlap=50", RecursiveCharacterTextSplitter,
         {"_chunk_size": 400, "_chunk_overlap": 50, "_add_start_index": True}),
        ("llamaindex:SentenceSplitter:chunk_size=256", SentenceSplitter, {"chunk_size": 256}),
        ("chonkie:TokenChunker:chunk_size=200", TokenChunker, {"chunk_size": 200, "chunk_overlap": 0}),
        ('langchain:CharacterTextSplitter:separator=" ",chunk_size=30,chunk_overlap=0', CharacterTextSplitter,
         {"_separator": " ", "_chunk_size": 30, "_chunk_overlap": 0}),
        ("chonkie:SentenceChunker:tokenizer=word,chunk_size=64,chunk_overlap=8", SentenceChunker,
         {"chunk_size": 64, "chunk_overlap": 8}),
    ],
)
def test_spec_builds_the_library_object_and_round_trips(spec: str, cls: type, settings: dict[str, object]) -> None:
    chunker = get_chunker(spec)
    assert isinstance(chunker, LibraryChunker) and type(chunker.splitter) is cls
    for attr, value in settings.items():
        assert getattr(chunker.splitter, attr) == value
    assert get_chunker(chunker.spec) == chunker
    assert get_chunker(chunker.config()) == chunker
    assert chunker.name == chunker.spec and chunker.unrepresentable == []


def test_spec_of_a_wrapped_object_lists_only_changed_settings() -> None:
    chunker = from_langchain(RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=200))
    assert chunker.spec == "langchain:RecursiveCharacterTextSplitter:chunk_size=800"  # 200 is the default overlap
    chonkie = from_chonkie(TokenChunker(tokenizer="word", chunk_size=50))
    assert chonkie.spec == "chonkie:TokenChunker:chunk_size=50,tokenizer=word"
    assert get_chunker(chonkie.spec) == chonkie


def test_a_custom_length_function_is_reported_as_unrepresentable() -> None:
    chunker = from_langchain(RecursiveCharacterTextSplitter(chunk_size=10, chunk_overlap=0,
                                                            length_function=lambda s: len(s.split())))
    assert chunker.unrepresentable == ["length_function"]
    assert chunker.config()["unrepresentable"] == ["length_function"]
    assert get_chunker(chunker.spec) != chunker


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("langchain", r"^chunker spec 'langchain' lacks a class name after 'langchain:'; valid form: "),
        ("langchain:NoSuchSplitter", r"^chunker spec 'langchain:NoSuchSplitter': langchain_text_splitters has no "
         r"class 'NoSuchSplitter'; check the spelling"),
        ("langchain:RecursiveCharacterTextSplitter:chunk_size", r"option 'chunk_size' is not key=value"),
        ("llamaindex:SentenceSplitter:chunk_size=10,chunk_size=20", r"option chunk_size= is given twice; keep one"),
        ("chonkie:TokenChunker:chunk_size=10,chunk_overlap=20", r"^chunker spec 'chonkie:TokenChunker:chunk_size=10,"
         r"chunk_overlap=20': TokenChunker\(chunk_size=10, chunk_overlap=20\) failed: "),
        ('langchain:RecursiveCharacterTextSplitter:separators=["a",', r"option separators= holds malformed JSON"),
        ("langchain:RecursiveCharacterTextSplitter:nope=1", r"RecursiveCharacterTextSplitter\(nope=1\) failed"),
    ],
)
def test_bad_specs_are_one_line_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        get_chunker(spec)
    assert "\n" not in str(info.value)


def test_wrapping_something_that_is_not_a_splitter_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"from_langchain\(\) needs a langchain splitter object with split_text\(\), "
                                        r"got str; e.g. from_langchain\(RecursiveCharacterTextSplitter"):
        from_langchain("RecursiveCharacterTextSplitter")
    with pytest.raises(TypeError, match=r"from_chonkie\(\) needs a chonkie splitter object with chunk\(\), got the "
                                        r"class TokenChunker \(pass an instance\)"):
        from_chonkie(TokenChunker)
    with pytest.raises(TypeError, match=r"from_llamaindex\(\) needs .* with get_nodes_from_documents\(\), got int"):
        from_llamaindex(3)


# -- LangChain --------------------------------------------------------------------------------------

REPEATED = "aa a a aa a  a  a\n\na\n"


def test_langchain_wrong_start_index_on_repeated_text_is_relocated(caplog: pytest.LogCaptureFixture) -> None:
    splitter = RecursiveCharacterTextSplitter(chunk_size=12, chunk_overlap=10, add_start_index=True)
    reported = [(d.metadata["start_index"], d.page_content) for d in splitter.create_documents([REPEATED])]
    # LangChain puts the last chunk 'a' at 7, inside the chunk before it; the 'a' it split off is at 19.
    assert reported == [(0, "aa a a aa a"), (3, "a a aa a  a"), (5, "a aa a  a"), (7, "aa a  a  a"), (7, "a")]
    chunker = from_langchain(splitter)
    with caplog.at_level(logging.WARNING, logger="chunkeval.chunkers"):
        got = pairs(chunker, REPEATED)
    assert got == [(0, 11), (3, 14), (5, 14), (7, 17), (19, 20)] == langchain_truth(splitter, REPEATED)
    assert chunker.last_relocated == 1 and chunker.relocated == 1
    assert [r.getMessage() for r in caplog.records] == [
        "langchain:RecursiveCharacterTextSplitter:chunk_overlap=10,chunk_size=12: relocated 1 chunk(s) whose "
        "reported offsets were wrong or missing, in 1 of 1 document(s)"]
    pairs(chunker, REPEATED)
    assert chunker.last_relocated == 1 and chunker.relocated == 2


def test_langchain_overlap_only_tail_chunk_keeps_its_offset() -> None:
    text = "alpha  n\u0303  alpha  n\u0303  \n\nalpha  n\u0303  alpha  n\u0303  "
    splitter = RecursiveCharacterTextSplitter(chunk_size=20, chunk_overlap=8, add_start_index=True)
    chunker = from_langchain(splitter)
    assert pairs(chunker, text) == [(0, 20), (18, 20), (24, 40), (35, 44)] == langchain_truth(splitter, text)
    assert chunker.relocated == 0


def test_langchain_relocation_against_the_oracle_on_random_repeated_text() -> None:
    rng = random.Random(1)
    ours_wrong = library_wrong = relocated = 0
    logging.disable(logging.WARNING)
    try:
        for _ in range(300):
            words = rng.choice([["ab", "cd"], ["x", "y", "z"], ["aa", "a"]])
            text = "".join(rng.choice(words) + rng.choice([" ", "  ", "\n", "\n\n"]) for _ in range(rng.randint(5, 40)))
            size = rng.randint(4, 20)
            splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=rng.randint(0, size - 1),
                                                      add_start_index=True)
            truth = langchain_truth(splitter, text)
            chunker = from_langchain(splitter)
            ours_wrong += pairs(chunker, text) != truth
            relocated += chunker.relocated
            reported = sorted((d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content))
                              for d in splitter.create_documents([text]) if d.page_content.strip())
            library_wrong += reported != truth
    finally:
        logging.disable(logging.NOTSET)
    # LangChain's offsets are wrong on about half of these documents; relocation fixes most of them.
    assert library_wrong > 100 and relocated > library_wrong
    assert ours_wrong * 5 < library_wrong


def test_langchain_on_ordinary_text_uses_its_offsets_and_leaves_the_splitter_alone() -> None:
    text = ("Chunking splits a document into passages.\n\nEach passage is embedded once. Retrieval ranks "
            "them by similarity to the question.\n\nSpans make the evaluation exact: a reference is a "
            "character range, and so is every chunk.")
    splitter = RecursiveCharacterTextSplitter(chunk_size=60, chunk_overlap=20)
    chunker = from_langchain(splitter)
    spans = chunker.chunk([text])
    assert chunk_texts(spans, [text]) == splitter.split_text(text)
    marked = RecursiveCharacterTextSplitter(chunk_size=60, chunk_overlap=20, add_start_index=True)
    assert list(zip(spans.start.tolist(), spans.end.tolist(), strict=True)) == [
        (d.metadata["start_index"], d.metadata["start_index"] + len(d.page_content))
        for d in marked.create_documents([text])]
    assert chunker.relocated == 0 and splitter._add_start_index is False


def test_a_splitter_that_rewrites_text_is_a_value_error() -> None:
    # CharacterTextSplitter joins its pieces with one separator, so a double space becomes one.
    chunker = from_langchain(CharacterTextSplitter(separator=" ", chunk_size=20, chunk_overlap=0))
    assert chunker.splitter.split_text("alpha  alpha") == ["alpha alpha"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"^langchain:CharacterTextSplitter:chunk_overlap=0,chunk_size=20,separator="
                                         r"\" \": document 1, chunk 0 \('alpha alpha'\) is not in the document; the "
                                         r"splitter changed the text"):
        chunker.chunk(["ok", "alpha  alpha"])


# -- LlamaIndex -------------------------------------------------------------------------------------


def test_llamaindex_wrong_start_char_idx_on_repeated_text_is_relocated() -> None:
    text = "alpha " * 14
    parser = SentenceSplitter(chunk_size=12, chunk_overlap=4)
    nodes = parser.get_nodes_from_documents([Document(text=text)])
    # The second chunk is the last six words (the first holds twelve of the fourteen), which start at
    # 48; LlamaIndex searches from one past the previous start and reports 6.
    assert [(n.start_char_idx, len(n.get_content())) for n in nodes] == [(0, 71), (6, 35)]  # type: ignore[attr-defined]
    chunker = from_llamaindex(parser)
    assert pairs(chunker, text) == [(0, 71), (48, 83)]
    assert chunker.relocated == 1


def test_llamaindex_overlap_only_tail_chunk_keeps_its_offset() -> None:
    text = "y. y x\ny\ny\n\nx. x  x x\nx  y. x\n\ny. y. y\ny  y\n\nx\n\ny\n\ny\n\ny\ny\n\n"
    chunker = from_llamaindex(TokenTextSplitter(chunk_size=8, chunk_overlap=3))
    got = pairs(chunker, text)
    assert got[-2:] == [(54, 57), (56, 57)] and chunker.relocated == 0
    nodes = chunker.splitter.get_nodes_from_documents([Document(text=text)])  # type: ignore[attr-defined]
    assert got == sorted((n.start_char_idx, n.end_char_idx) for n in nodes)


# -- chonkie ----------------------------------------------------------------------------------------

CAT = ("The cat sat. " * 3 + "\n\n") * 6 + "End here."


@pytest.mark.parametrize("make", [lambda: TokenChunker(chunk_size=20, chunk_overlap=5),
                                  lambda: SentenceChunker(chunk_size=8, chunk_overlap=4, min_characters_per_sentence=2),
                                  lambda: TokenChunker(tokenizer="word", chunk_size=4, chunk_overlap=2)])
def test_chonkie_offsets_on_repeated_text_are_exact_and_kept(make: object) -> None:
    library = make()  # type: ignore[operator]
    chunker = from_chonkie(library)
    reported = [(c.start_index, c.end_index) for c in library.chunk(CAT) if c.text.strip()]
    assert all(CAT[c.start_index:c.end_index] == c.text for c in library.chunk(CAT))
    assert pairs(chunker, CAT) == sorted(reported) and chunker.relocated == 0


def test_chonkie_whitespace_only_chunks_are_dropped() -> None:
    library = RecursiveChunker(chunk_size=20)
    chunks = library.chunk(CAT)
    blank = [(c.start_index, c.end_index) for c in chunks if not c.text.strip()]
    assert blank == [(40, 41), (81, 82), (122, 123), (163, 164), (204, 205)]
    got = pairs(from_chonkie(library), CAT)
    assert len(got) == len(chunks) - 5 and not set(blank) & set(got)


# -- the property harness on each adapter -----------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: from_langchain(RecursiveCharacterTextSplitter(chunk_size=20, chunk_overlap=8)),
    lambda: from_langchain(RecursiveCharacterTextSplitter(chunk_size=30, chunk_overlap=0)),
    lambda: from_llamaindex(SentenceSplitter(chunk_size=12, chunk_overlap=4)),
    lambda: from_llamaindex(TokenTextSplitter(chunk_size=20, chunk_overlap=5)),
    lambda: from_chonkie(TokenChunker(chunk_size=20, chunk_overlap=5)),
    lambda: from_chonkie(SentenceChunker(chunk_size=20, chunk_overlap=5)),
    lambda: from_chonkie(RecursiveChunker(chunk_size=20)),
], ids=["lc-overlap", "lc-plain", "li-sentence", "li-token", "ck-token", "ck-sentence", "ck-recursive"])
def test_adapters_keep_the_chunker_contract(make: object) -> None:
    logging.disable(logging.WARNING)
    try:
        check_chunker(make(), max_examples=25)  # type: ignore[operator]
    finally:
        logging.disable(logging.NOTSET)
