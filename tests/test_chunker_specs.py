"""The chunker spec grammar: every chunker and option from one string, the spec property round-trips,
the help text's examples parse, the semantic chunker takes the run's embedder, bad specs are one-line
errors naming the spec, the bad part and the valid forms."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunkeval.chunkers import (
    CHUNKER_SPEC_HELP,
    Chunker,
    ClusterSemanticChunker,
    FixedTokenChunker,
    OffsetChunker,
    RecursiveChunker,
    SentenceChunker,
    TextChunker,
    get_chunker,
)
from chunkeval.chunkers.spec import parse_spec
from chunkeval.tokenizers import get_tokenizer


class NamedEmbedder:
    """Test input: a deterministic embedder with a model name, like chunkeval.embedding.Embedder."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray([[len(t) + 1.0, t.count(" ") + 1.0] for t in texts], dtype=np.float32)


MINILM = NamedEmbedder("all-MiniLM-L6-v2")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("fixed:200:0", FixedTokenChunker(200, 0)),
        ("fixed:200", FixedTokenChunker(200, 0)),
        ("fixed:200:50:chars", FixedTokenChunker(200, 50, "chars")),
        ("fixed:size=200:overlap=50:tokenizer=chars", FixedTokenChunker(200, 50, "chars")),
        ("fixed:64:0:tiktoken:cl100k_base", FixedTokenChunker(64, 0, "cl100k_base")),
        ("fixed:64:0:all-MiniLM-L6-v2", FixedTokenChunker(64, 0, "all-MiniLM-L6-v2")),
        ("recursive:400:200", RecursiveChunker(400, 200)),
        ("recursive:400:200:strip", RecursiveChunker(400, 200, strip=True)),
        ("recursive:400:200:strip=true", RecursiveChunker(400, 200, strip=True)),
        ("recursive:400:200:strip=false", RecursiveChunker(400, 200)),
        ("recursive:400:0:tokenizer=cl100k_base", RecursiveChunker(400, 0)),
        ("recursive:800:0:chars", RecursiveChunker(800, 0, length="chars")),
        ("recursive:800:0:length=chars", RecursiveChunker(800, 0, length="chars")),
        ("recursive:800:0:strip:chars", RecursiveChunker(800, 0, length="chars", strip=True)),
        ("recursive:300:30:chars:strip:separators=[\"\\n\",\":\",\"\"]",
         RecursiveChunker(300, 30, separators=["\n", ":", ""], length="chars", strip=True)),
        (" Recursive:400:0 ", RecursiveChunker(400, 0)),
        ("sentence:5", SentenceChunker(5)),
        ("sentence:sentences_per_chunk=7", SentenceChunker(7)),
        ("sentence:n=3", SentenceChunker(3)),
        ("semantic:400", ClusterSemanticChunker(400, embedder=MINILM)),
        ("semantic:400:40:chars", ClusterSemanticChunker(400, 40, length="chars", embedder=MINILM)),
        ("cluster_semantic:300:piece_size=30", ClusterSemanticChunker(300, 30, embedder=MINILM)),
        ("cluster-semantic:size=300", ClusterSemanticChunker(300, embedder=MINILM)),
        ("semantic:200:20:all-MiniLM-L6-v2", ClusterSemanticChunker(200, 20, tokenizer="all-MiniLM-L6-v2",
                                                                  embedder=MINILM)),
    ],
)
def test_string_specs(spec: str, expected: Chunker) -> None:
    chunker = get_chunker(spec, embedder=MINILM)
    assert chunker == expected and type(chunker) is type(expected)
    assert get_chunker(chunker.spec, embedder=MINILM) == chunker


def test_specs_by_hand() -> None:
    assert parse_spec("recursive:400:200:strip") == ("recursive", {"size": 400, "overlap": 200, "strip": True})
    assert parse_spec("fixed:256:0:hf:/models/e5") == ("fixed", {"size": 256, "overlap": 0,
                                                                 "tokenizer": "hf:/models/e5"})
    assert parse_spec('semantic:400:embedder="C:/models/e5"') == ("semantic", {"max_size": 400,
                                                                              "embedder": "C:/models/e5"})
    assert RecursiveChunker(400, 200, strip=True).spec == "recursive:400:200:strip"
    assert RecursiveChunker(800, 0, separators=["\n\n", " ", ""], length="chars").spec == \
        'recursive:800:0:chars:separators=["\\n\\n"," ",""]'
    assert FixedTokenChunker(200, 50, "chars").spec == "fixed:200:50:chars"
    minilm = get_tokenizer("all-MiniLM-L6-v2").spec  # type: ignore[attr-defined]
    assert FixedTokenChunker(200, 0, "all-MiniLM-L6-v2").spec == f"fixed:200:0:{minilm}"
    assert SentenceChunker(5).spec == "sentence:5"
    assert ClusterSemanticChunker(400).spec == "semantic:400:50:embedder=all-MiniLM-L6-v2"
    assert ClusterSemanticChunker(300, 30, length="chars", embedder="/m/e5:v2").spec == \
        'semantic:300:30:chars:embedder="/m/e5:v2"'


def test_the_semantic_chunker_takes_the_runs_embedder() -> None:
    own = NamedEmbedder("/models/e5")
    chunker = get_chunker("semantic:400", embedder=own)
    assert isinstance(chunker, ClusterSemanticChunker) and chunker.embedder is own
    assert chunker.spec == "semantic:400:50:embedder=/models/e5"
    # The spec's embedder wins; the run's object is used when it is that model.
    assert get_chunker("semantic:400:embedder=/models/e5", embedder=own).embedder is own  # type: ignore[attr-defined]
    other = get_chunker("semantic:400:embedder=all-MiniLM-L6-v2", embedder=own)
    assert other.config()["embedder"] == "all-MiniLM-L6-v2" and other._embedder is None  # type: ignore[attr-defined]
    # A model name works as the run's embedder too (built on the first chunk() call).
    named = get_chunker("semantic:400", embedder="all-MiniLM-L6-v2")
    assert named == ClusterSemanticChunker(400) and named._embedder is None  # type: ignore[attr-defined]
    # The pipeline may pass its embedder to every chunker; the others ignore it.
    assert get_chunker("fixed:200:0", embedder=own) == FixedTokenChunker(200, 0)
    # Chunking runs on the given embedder.
    spans = get_chunker("semantic:20:5:chars", embedder=own).chunk(["aaaa bbbb cccc dddd eeee"])
    assert spans.start[0] == 0 and spans.end[-1] == 24
    with pytest.raises(ValueError, match=r"chunker spec 'semantic:400': the semantic chunker embeds its pieces and "
                                         r"needs an embedder; pass get_chunker\(spec, embedder=...\) or name one in "
                                         r"the spec, e.g. 'semantic:400:embedder=all-MiniLM-L6-v2'; valid forms"):
        get_chunker("semantic:400")


def test_dict_specs_of_a_sweep_grid() -> None:
    # What `sweep --types semantic --sizes 200` writes: {"type", "size", "overlap"}.
    grid = {"type": "semantic", "size": 200, "overlap": 0}
    assert get_chunker(grid, embedder=MINILM) == ClusterSemanticChunker(200, embedder=MINILM)
    assert get_chunker({"type": "cluster_semantic", "max_size": 200}, embedder=MINILM) == \
        ClusterSemanticChunker(200, embedder=MINILM)
    chunker = ClusterSemanticChunker(300, 30, length="chars", embedder=MINILM)
    assert get_chunker(chunker.config()) == chunker  # config() names the embedder
    with pytest.raises(ValueError, match=r"the semantic chunker has no overlap \(got 50\); drop overlap"):
        get_chunker({"type": "semantic", "size": 200, "overlap": 50}, embedder=MINILM)
    with pytest.raises(ValueError, match="give max_size or size, not both"):
        get_chunker({"type": "semantic", "size": 200, "max_size": 300}, embedder=MINILM)
    with pytest.raises(ValueError, match=r"the semantic chunker embeds its pieces and needs an embedder"):
        get_chunker(grid)


ROUND_TRIP = [
    FixedTokenChunker(200, 0), FixedTokenChunker(50, 5, "chars"), FixedTokenChunker(3, 1, "all-MiniLM-L6-v2"),
    RecursiveChunker(300, 30), RecursiveChunker(300, 0, separators=["\n", ""], length="chars", strip=True),
    RecursiveChunker(10, 2, separators=['"', "[", "a=b", ":", "\\", "\u3000"], tokenizer="all-MiniLM-L6-v2"),
    SentenceChunker(15), ClusterSemanticChunker(400), ClusterSemanticChunker(100, 10, length="chars", embedder=MINILM),
]


@pytest.mark.parametrize("chunker", ROUND_TRIP, ids=lambda c: c.spec)
def test_spec_and_config_round_trip(chunker: Chunker) -> None:
    rebuilt = get_chunker(chunker.spec)
    assert rebuilt == chunker and rebuilt.name == chunker.name and rebuilt.spec == chunker.spec
    assert get_chunker(chunker.config()) == chunker


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 10**6),
    data=st.data(),
    separators=st.none() | st.lists(st.text(alphabet=st.sampled_from(list(':"[]=\\\n\r\t ,.a{}')), max_size=3),
                                    min_size=1, max_size=4),
    length=st.sampled_from(["tokens", "chars"]),
    strip=st.booleans(),
)
def test_recursive_specs_round_trip(size: int, data: st.DataObject, separators: list[str] | None, length: str,
                                    strip: bool) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    kwargs = {} if separators is None else {"separators": separators}
    chunker = RecursiveChunker(size, overlap, length=length, strip=strip, **kwargs)  # type: ignore[arg-type]
    assert get_chunker(chunker.spec) == chunker


def test_help_text_is_short_and_its_examples_parse() -> None:
    lines = CHUNKER_SPEC_HELP.splitlines()
    assert len(lines) <= 20 and max(map(len, lines)) <= 105
    first = next(i for i, line in enumerate(lines) if line.startswith("Examples:"))
    block = "  ".join(line.strip() for line in lines[first:] if not line.startswith("No chunker"))
    examples = re.split(r"\s{2,}", block.removeprefix("Examples:").strip())
    assert len(examples) == 10
    for spec in examples:
        chunker = get_chunker(spec, embedder=MINILM)
        assert get_chunker(chunker.spec, embedder=MINILM) == chunker
    # Every form line's type parses.
    forms = re.findall(r"^  (\w+):<", CHUNKER_SPEC_HELP, flags=re.M)
    assert forms == ["fixed", "recursive", "sentence", "semantic", "offsets"]


FIXED_FORMS = r"valid forms: 'fixed:<size>\[:<overlap>\[:<tokenizer>\|chars\]\]' \(e.g. 'fixed:200:0'\)$"
RECURSIVE_FORMS = r"valid forms: 'recursive:<size>\[:<overlap>\[:<tokenizer>\|chars\]\]\[:strip\]'"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fixed", r"^chunker spec 'fixed': lacks a size, e.g. 'fixed:200:0'; " + FIXED_FORMS),
        ("fixed:abc", r"^chunker spec 'fixed:abc': size 'abc' is not an integer \(digits only, e.g. 200\); "
         + FIXED_FORMS),
        ("fixed:10:x", r"overlap 'x' is not an integer"),
        ("fixed:-5", r"size '-5' is not an integer \(digits only"),
        ("fixed:" + "9" * 5000, r"size '9999.*' is not an integer"),
        ("fixed:10:10", r"^chunker spec 'fixed:10:10': overlap \(10\) must be smaller than size \(10\); "
         r"windows advance by size - overlap tokens; " + FIXED_FORMS),
        ("fixed:0", r"chunker spec 'fixed:0': size must be >= 1"),
        ("fixed:200:", r"chunker spec 'fixed:200:': a field is empty \(two ':' in a row, or a ':' at the end\)"),
        ("fixed:200:0:nope", r"chunker spec 'fixed:200:0:nope': unknown tokenizer 'nope'"),
        ("fixed:200:size=3", r"size is given twice \(again by option size=\)"),
        ("fixed:200:strip", r"chunker spec 'fixed:200:strip': overlap 'strip' is not an integer"),
        ("recursive:400:0:bogus=1", r"unknown option bogus= \(valid options: size=, overlap=, tokenizer=, length=, "
         r"strip=, separators=\); " + RECURSIVE_FORMS),
        ("recursive:400:0:strip=maybe", r"strip 'maybe' is not a boolean \(true or false\)"),
        ("recursive:400:0:length=words", r"length 'words' is not 'tokens' or 'chars'"),
        ("recursive:400:0:separators=[1]", r"separators \[1\] is not a JSON list of strings"),
        ("recursive:400:0:separators=\\n", r"separators '\\\\n' is not a JSON list of strings"),
        ('recursive:400:0:separators=["a"', r"option separators= holds malformed JSON \(Expecting ',' delimiter"),
        ('recursive:400:0:separators=["a"]x', r"option separators= has text after its JSON value: 'x'"),
        ("recursive:400:0:tokenizer=", r"tokenizer '' must be a non-empty string"),
        ("recursive:400:strip:strip", r"strip is given twice \(again by flag 'strip'\)"),
        ("sentence", r"^chunker spec 'sentence': lacks <n>, the sentences per chunk, e.g. 'sentence:5'; valid forms: "
         r"'sentence:<n>' \(e.g. 'sentence:5'\)$"),
        ("sentence:5:3", r"^chunker spec 'sentence:5:3': unexpected field '3'; valid forms: 'sentence:<n>'"),
        ("semantic:400:500", r"piece_size \(500\) must not exceed max_size \(400\)"),
        ("nope:3", r"^unknown chunker spec 'nope:3': type 'nope' is not one of \['fixed', 'offsets', 'recursive', "
         r"'semantic', 'sentence', 'text', .*\]; valid forms: 'fixed:.*'semantic:<max_size>.*; see CHUNKER_SPEC_HELP$"),
        ("", r"^unknown chunker spec '': type '' is not one of"),
        ("offsets:f", r"^chunker spec 'offsets:f': lacks a module and a function, "
         r"e.g. 'offsets:mypkg.split:paragraphs'; valid forms: 'offsets:<module>:<function>'"),
        ("offsets:no_such_module_x:f", r"cannot import module 'no_such_module_x' \(No module named"),
        ("offsets:os:no_such_function", r"module 'os' has no function 'no_such_function'; check the name"),
        ("text:os:sep", r"^chunker spec 'text:os:sep': os:sep is a str, not a function; valid forms: "
         r"'text:<module>:<function>\[:overlapping\]'"),
        ("offsets:os:path:join", r"unexpected field 'join'"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        get_chunker(spec, embedder=MINILM)
    assert "\n" not in str(info.value)


def paragraph_offsets(text: str) -> list[tuple[int, int]]:
    """A user's splitter (test input): one span per paragraph, blank lines included."""
    return [m.span() for m in re.finditer(r"(?s).+?(?:\n\n+|$)", text) if m.end() > m.start()]


class Splitters:
    @staticmethod
    def words(text: str) -> list[str]:
        return text.split()


def test_adapters_from_importable_functions() -> None:
    chunker = OffsetChunker(paragraph_offsets)
    assert chunker.spec == f"offsets:{__name__}:paragraph_offsets"
    rebuilt = get_chunker(chunker.spec)
    assert rebuilt == chunker and rebuilt.name == "offsets:paragraph_offsets"
    text = "One.\n\nTwo two.\n\n\nThree"
    assert rebuilt.chunk([text]).end.tolist() == [6, 17, 22]
    words = TextChunker(Splitters.words, overlapping=True, name="my words")
    assert words.spec == f'text:{__name__}:Splitters.words:overlapping:name="my words"'
    assert get_chunker(words.spec) == words
    assert get_chunker(f"text:{__name__}:Splitters.words").chunk([text]).lengths().tolist() == [4, 3, 4, 5]
    # A lambda has a spec that says what it is, and parsing it says why it cannot be rebuilt.
    anonymous = OffsetChunker(lambda t: [(0, len(t))], name="whole")
    assert anonymous.spec == f"offsets:{__name__}:test_adapters_from_importable_functions.<locals>.<lambda>:name=whole"
    with pytest.raises(ValueError, match=r"is a lambda or a local function and cannot be imported; define it at "
                                         r"module level, or construct the chunker in code"):
        get_chunker(anonymous.spec)
    with pytest.raises(TypeError, match=r"chunker spec must be a str or a dict, got int; valid forms"):
        get_chunker(3)  # type: ignore[arg-type]
