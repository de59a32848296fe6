"""The company's knowledge base: Markdown/FAQ files it writes, searched offline to draft
answers to questions the rules cannot act on ("¿Tienen servicio en Valparaíso?").

A knowledge base is a folder of `.md` (or `.txt`) files. Each file is cut into passages:

- a section under a heading (`#` to `######`) is one passage, titled by its heading; a
  long section (over `MAX_PASSAGE_CHARS`) is cut into its paragraphs, each keeping the title;
- a heading that ends in "?" makes its section a question/answer pair (`kind` "faq");
- lines `Q:`/`P:`/`Pregunta:`/`Pergunta:`/`Question:` followed by `A:`/`R:`/`Respuesta:`/
  `Resposta:`/`Answer:` are a question/answer pair each.

A passage's language is the file's: a first folder named `es`, `en` or `pt`
(`es/servicio.md`), else a name ending `.es.md`, else a first line `lang: es`; without any,
the passage serves every language.

Retrieval is TF-IDF over words (scikit-learn), offline: accents and case folded, common
words of es/en/pt dropped, each word cut to its first `STEM_CHARS` letters (a crude stemmer
that makes "servicio", "serviço" and "service" one term), and a passage's title counted
twice (an FAQ's question is what people ask). A passage's score is its cosine similarity to
the question; one in another language than the customer's counts `OTHER_LANGUAGE_WEIGHT`
of it and is quoted only when none in the customer's language is relevant. Passages scoring
under `MIN_SCORE` are not relevant: with none left, the draft says a person will answer.

    >>> kb = load_knowledge("docs/examples/knowledge")
    >>> [hit.passage.title for hit in kb.search("¿Tienen servicio en Valparaíso?", lang="es")]
    ['¿En qué ciudades tienen servicio?', ...]
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

#: Languages a passage (and a draft) can be in.
LANGS = ("es", "en", "pt")
#: File names read as knowledge.
SUFFIXES = (".md", ".markdown", ".txt")
#: A section longer than this is cut into its paragraphs (a passage should be quotable).
MAX_PASSAGE_CHARS = 700
#: Under this cosine similarity a passage is not relevant. Chosen on the example knowledge
#: base (bench/knowledge_bench.py, BENCHMARKS.md "Knowledge base"): the right passages of
#: covered questions mostly score 0.2 to 0.75, while the best passage of a question it does
#: not cover scores under 0.15 in 5 cases of 6; lower lets one shared word through.
MIN_SCORE = 0.2
#: A passage in another language than the customer's counts this much of its score.
OTHER_LANGUAGE_WEIGHT = 0.7
#: Words are cut to this many letters before matching.
STEM_CHARS = 6
#: At most this many passages are quoted in a draft.
TOP_K = 2
#: A knowledge base larger than this many files is refused (a wrong folder, not a FAQ).
MAX_FILES = 2000

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_QUESTION = re.compile(
    r"^\s*(?:\*\*)?(?:q|p|pregunta|pergunta|question)\s*:(?:\*\*)?\s*(.+)$", re.I
)
_ANSWER = re.compile(r"^\s*(?:\*\*)?(?:a|r|respuesta|resposta|answer)\s*:(?:\*\*)?\s*(.*)$", re.I)
_LANG_LINE = re.compile(r"^\s*lang(?:uage)?\s*:\s*(\w\w)\s*$", re.I)
_WORD = re.compile(r"[a-z0-9]+")

# Function words of the three languages (accent-folded), and the small talk of a question:
# they say nothing about what is asked.
_STOPWORDS = frozenset(
    """
    a al algo algun alguna algunas alguno algunos ante antes aqui asi aun con como cual
    cuales cuando de del desde donde el ella ellas ellos en entre era es esa esas ese eso
    esos esta estan estas este esto estos fue ha han hasta hay la las le les lo los mas me
    mi mis mucho muy ni no nos nosotros o os otra otro para pero poco por porque que quien
    se ser si sin sobre son su sus tambien te tiene tienen tengo ti todo todos tu tus un una
    uno unos usted ustedes vosotros y ya yo hola buenas buenos dias tardes gracias saludos
    favor quisiera querria queria saber consulta pregunta preguntar podrian pueden puede
    estimados estimado cordial cordiales atentamente senor senora cuanto cuanta cuantos
    cuantas cual cuales necesito necesitamos quiero queremos puedo podemos
    ao aos as com da das de do dos e ela ele eles em essa esse esta este eu foi ha isso mais
    mas meu minha na nas nem no nos o os ou para pela pelo por qual quando que se sem ser
    seu sua tem tambem voce voces vos um uma ola obrigado obrigada bom dia boa tarde
    gostaria saber poderiam podem pode prezados prezado quanto quanta quantos quantas quais
    preciso precisamos quero queremos posso podemos tem ter
    about an and any are as at be but by can could do does for from had has have hello hi
    how i if in is it its me my no not of on or our please regards should so than thanks
    thank that the their them then there these they this to us was we were what when where
    which who why will with would you your dear kind best know wondering question much many
    need want
    """.split()
)


@dataclass(frozen=True)
class Passage:
    """One quotable piece of the knowledge base.

    Attributes:
        source: the file, relative to the knowledge base's folder (`es/servicio.md`).
        title: the section's heading or the FAQ's question ("" before the first heading).
        text: the section's, paragraph's or answer's text.
        lang: es, en, pt, or "" for every language.
        kind: "section", "paragraph" or "faq".
    """

    source: str
    title: str
    text: str
    lang: str = ""
    kind: str = "section"

    @property
    def cite(self) -> str:
        """How a draft names it: `es/servicio.md › ¿En qué ciudades tienen servicio?`."""
        return f"{self.source} › {self.title}" if self.title else self.source


@dataclass(frozen=True)
class Hit:
    """A passage found for a question, with its score (0 to 1; `MIN_SCORE` and above is
    relevant)."""

    passage: Passage
    score: float


class KnowledgeError(ValueError):
    """The knowledge base cannot be read (the message names the folder or file)."""


def fold(text: str) -> str:
    """Lowercase and accent-free: "Valparaíso" → "valparaiso", "Serviço" → "servico"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """The words retrieval matches on: folded, without function words, cut to
    `STEM_CHARS` letters."""
    return [w[:STEM_CHARS] for w in _WORD.findall(fold(text)) if w not in _STOPWORDS]


class KnowledgeBase:
    """Passages and their TF-IDF index.

    Example:
        >>> kb = KnowledgeBase([Passage("faq.md", "¿Hacen envíos?", "Sí, a todo Chile.", "es")])
        >>> kb.search("hacen envios a chile?", lang="es")[0].passage.text
        'Sí, a todo Chile.'
    """

    def __init__(self, passages: list[Passage], *, root: str = "") -> None:
        self.root = root
        self.passages = list(passages)
        self._vectorizer: TfidfVectorizer | None = None
        documents = [f"{p.title}\n{p.title}\n{p.text}" for p in self.passages]
        if any(terms(d) for d in documents):
            self._vectorizer = TfidfVectorizer(
                analyzer=terms, sublinear_tf=True, norm="l2", dtype=np.float64
            )
            self._matrix = self._vectorizer.fit_transform(documents)

    def __len__(self) -> int:
        return len(self.passages)

    def _scores(self, question: str) -> np.ndarray:
        """Cosine similarity of `question` to every passage, the question's words that no
        passage has counted too (at the highest weight a word can have): a question that
        is mostly about something else does not look relevant by one shared word."""
        counts: dict[str, int] = {}
        for term in terms(question):
            counts[term] = counts.get(term, 0) + 1
        vocabulary = self._vectorizer.vocabulary_
        unknown_idf = float(np.log((1 + len(self.passages)) / 1) + 1)  # df 0, smoothed
        query = np.zeros(len(vocabulary))
        norm = 0.0
        for term, count in counts.items():
            column = vocabulary.get(term)
            idf = unknown_idf if column is None else float(self._vectorizer.idf_[column])
            weight = (1 + np.log(count)) * idf  # sublinear tf, as the passages
            norm += weight * weight
            if column is not None:
                query[column] = weight
        if norm == 0:
            return np.zeros(len(self.passages))
        return np.asarray(self._matrix @ query).ravel() / np.sqrt(norm)

    def search(
        self, question: str, *, lang: str = "", k: int = TOP_K, min_score: float = MIN_SCORE
    ) -> list[Hit]:
        """The `k` passages most relevant to `question`, best first, each scoring at least
        `min_score` (so possibly none). Passages in `lang` (or in every language) count in
        full, others `OTHER_LANGUAGE_WEIGHT` of their score, and those are returned only
        when no passage in `lang` is relevant."""
        if self._vectorizer is None:
            return []
        scores = self._scores(question)
        hits = []
        for index, raw in enumerate(scores):
            passage = self.passages[index]
            weight = 1.0 if not lang or passage.lang in ("", lang) else OTHER_LANGUAGE_WEIGHT
            score = float(raw) * weight
            if score >= min_score:
                hits.append(Hit(passage, round(score, 4)))
        hits.sort(key=lambda h: (-h.score, h.passage.source, h.passage.title))
        own = [h for h in hits if h.passage.lang in ("", lang)]
        # The customer's language first: another language's passage is quoted only when
        # none in theirs is relevant.
        return (own or hits)[:k] if lang else hits[:k]


def load_knowledge(folder: str | Path) -> KnowledgeBase:
    """Read every Markdown/text file under `folder` into passages (see the module
    docstring).

    Raises:
        KnowledgeError: the folder does not exist, holds more than `MAX_FILES` files, or a
            file is not UTF-8 text (named).
    """
    root = Path(folder)
    if not root.is_dir():
        raise KnowledgeError(f"knowledge base: {root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if len(files) > MAX_FILES:
        raise KnowledgeError(
            f"knowledge base: {root} holds {len(files)} files (more than {MAX_FILES}); "
            "point it at the folder of the company's FAQ files"
        )
    passages: list[Passage] = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise KnowledgeError(f"knowledge base: {relative} is not UTF-8 text ({exc})") from None
        passages.extend(parse_passages(text, relative))
    return KnowledgeBase(passages, root=str(root))


_CACHE: dict[str, tuple[tuple, KnowledgeBase]] = {}


def cached_knowledge(folder: str | Path) -> KnowledgeBase:
    """`load_knowledge(folder)`, read again only when a file was added, removed or changed
    (each reply task asks for it; the files rarely change)."""
    root = Path(folder)
    if not root.is_dir():
        raise KnowledgeError(f"knowledge base: {root} is not a folder")
    signature = tuple(
        sorted(
            (str(p), p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in SUFFIXES
        )
    )
    key = str(root.resolve())
    hit = _CACHE.get(key)
    if hit is None or hit[0] != signature:
        hit = (signature, load_knowledge(root))
        _CACHE[key] = hit
    return hit[1]


def file_language(relative: str, text: str = "") -> str:
    """The language of a knowledge file: its first folder, its name's `.xx.md` ending, or a
    first line `lang: xx`; "" when none says."""
    parts = relative.split("/")
    if len(parts) > 1 and parts[0].lower() in LANGS:
        return parts[0].lower()
    stem_parts = parts[-1].lower().split(".")
    if len(stem_parts) >= 3 and stem_parts[-2] in LANGS:
        return stem_parts[-2]
    first = text.lstrip().split("\n", 1)[0] if text else ""
    found = _LANG_LINE.match(first)
    if found and found.group(1).lower() in LANGS:
        return found.group(1).lower()
    return ""


def parse_passages(text: str, source: str) -> list[Passage]:
    """One file's passages (sections, paragraphs of long sections, Q&A pairs)."""
    lang = file_language(source, text)
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and _LANG_LINE.match(lines[0]):
        lines = lines[1:]
    passages: list[Passage] = []
    title, body = "", []
    for line in [*lines, "# "]:  # a last empty heading closes the last section
        heading = _HEADING.match(line) if line.startswith("#") else None
        if heading or line == "# ":
            passages.extend(_section(source, lang, title, body))
            title, body = (heading.group(2).strip() if heading else ""), []
        else:
            body.append(line)
    return passages


def _section(source: str, lang: str, title: str, lines: list[str]) -> list[Passage]:
    pairs, rest = _qa_pairs(lines)
    out = [Passage(source, q, a, lang, "faq") for q, a in pairs]
    body = "\n".join(rest).strip()
    if not body:
        return out
    if title.endswith("?"):
        return [*out, Passage(source, title, body, lang, "faq")]
    if len(body) <= MAX_PASSAGE_CHARS:
        return [*out, Passage(source, title, body, lang, "section")]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    return [*out, *(Passage(source, title, p, lang, "paragraph") for p in paragraphs)]


def _qa_pairs(lines: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """`Q:`/`A:` pairs found in a section's lines, and the lines that are not part of one."""
    pairs: list[tuple[str, str]] = []
    rest: list[str] = []
    question: str | None = None
    answer: list[str] | None = None

    def close() -> None:
        nonlocal question, answer
        if question is not None and answer is not None and "\n".join(answer).strip():
            pairs.append((question, "\n".join(answer).strip()))
        elif question is not None:
            rest.append(question)
        question, answer = None, None

    for line in lines:
        q = _QUESTION.match(line)
        a = _ANSWER.match(line) if question is not None and answer is None else None
        if q:
            close()
            question = q.group(1).strip().strip("*").strip()
        elif a:
            answer = [a.group(1)]
        elif answer is not None and line.strip():
            answer.append(line)
        elif answer is not None:
            close()
        elif question is not None:
            question = f"{question} {line.strip()}".strip()
        else:
            rest.append(line)
    close()
    return pairs, rest


def quote(text: str, width: int = 600) -> str:
    """A passage's text for a draft: Markdown emphasis removed, cut at `width` characters
    (on a word), each line prefixed "> "."""
    plain = re.sub(r"(\*\*|__|`)", "", text).strip()
    if len(plain) > width:
        plain = plain[:width].rsplit(" ", 1)[0] + " …"
    return "\n".join(f"> {line}".rstrip() for line in plain.split("\n"))
