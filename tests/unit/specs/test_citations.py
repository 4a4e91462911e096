"""What a user reads cites standards by their real names and links to pages that exist.

Walks every analysis's ``standard`` text and parameter descriptions, every shipped
spec (its sources, rule sources and notes), every string a module of ``src/`` can
show (warnings, errors, help texts: the string constants outside docstrings, plus
the docstrings of command-line commands, which are their help) and the reference
pages under ``docs/standards/``. None may cite an internal notes file
(``STANDARDS.md``), a confidence tag (``[C]``, ``[P]``, ``[U]``), another tool's
source file (``acr.py``) or words such as "hazen task"; every
``docs/standards/PAGE.md#ANCHOR`` they link to must exist, anchor included.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import String

from scanbench.analysis.base import parameters_of
from scanbench.analysis.registry import all_analyses
from scanbench.specs import list_specs, load_spec

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src" / "scanbench"
DOCS = ROOT / "docs" / "standards"

FORBIDDEN = [
    (re.compile(r"STANDARDS(\.md|\b)"), "the project's internal notes file"),
    (re.compile(r"\[[CPU]\]|\[[CPU],|, ?[CPU]\]|\([CPU]\)"), "a confidence tag"),
    (re.compile(r"\b[A-Za-z_][\w/]*\.py\b"), "a source file name"),
    (re.compile(r"hazen ?task|hazenlib|disagreeing hazen|tasks/", re.I),
     "an implementation detail of another tool"),
]
LINK = re.compile(r"docs/standards/([\w.-]+\.md)(?:#([\w-]+))?")


def slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *$", page.read_text(),
                                                   re.M)}


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _is_command(node: ast.AST) -> bool:
    """A function decorated as a command line command: its docstring is its help."""
    if not isinstance(node, ast.FunctionDef):
        return False
    return any("command" in ast.unparse(d) or "callback" in ast.unparse(d)
               for d in node.decorator_list)


def source_texts() -> Iterator[tuple[str, str]]:
    """(where, text) for every string a module can show a user."""
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstring_ids(tree)
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings:
                yield f"{rel}:{node.lineno}", node.value
            if isinstance(node, ast.FunctionDef) and _is_command(node):
                doc = ast.get_docstring(node)
                if doc:
                    yield f"{rel}:{node.lineno} (help)", doc
    for path in sorted(SRC.rglob("*.yaml")):  # specs and reference-level tables
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        yield from ((f"{path.relative_to(ROOT)}", t) for t in _strings(data))
    for path in sorted((SRC / "report" / "templates").glob("*")):
        yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def _strings(data: object) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for v in data.values():
            yield from _strings(v)
    elif isinstance(data, list):
        for v in data:
            yield from _strings(v)


def analysis_texts() -> Iterator[tuple[str, str]]:
    for aid, a in sorted(all_analyses().items()):
        yield f"{aid} standard", a.standard
        yield f"{aid} title", a.title
        for p in parameters_of(a):
            yield f"{aid} parameter {p.name}", f"{p.description} {p.unit} {p.default_text()}"


def spec_texts() -> Iterator[tuple[str, str]]:
    for name in list_specs():
        s = load_spec(name)
        for field in (s.title, s.version, s.description, s.unverified_reason, *s.sources):
            yield f"spec {name}", field
        for i, r in enumerate(s.rules):
            yield f"spec {name} rules[{i}].source", r.source
            yield f"spec {name} rules[{i}].note", r.note


def docs_texts() -> Iterator[tuple[str, str]]:
    """The reference pages."""
    for page in sorted(DOCS.glob("*.md")):
        yield str(page.relative_to(ROOT)), page.read_text(encoding="utf-8")


def project_docs_texts() -> Iterator[tuple[str, str]]:
    """The README and the other pages under docs/ (they may name scanbench's own modules
    and tests by file, for developers, but never the notes file or a confidence tag)."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        yield str(page.relative_to(ROOT)), re.sub(r"\b[\w/]+\.py\b", "", text)


def _offences(texts: Iterable[tuple[str, str]]) -> list[str]:
    found = []
    for where, text in texts:
        for pattern, what in FORBIDDEN:
            for m in pattern.finditer(text):
                found.append(f"{where}: {what} {m.group(0)!r} in {text[:120]!r}")
                break
    return found


@pytest.mark.parametrize("texts", [analysis_texts, spec_texts, source_texts, docs_texts,
                                   project_docs_texts],
                         ids=["analyses", "specs", "src", "docs/standards", "docs and README"])
def test_user_text_cites_standards_not_notes_tags_or_files(
        texts: Callable[[], Iterator[tuple[str, str]]]) -> None:
    offences = _offences(texts())
    assert not offences, "\n".join(offences)


def test_the_forbidden_patterns_catch_what_issue_11_found() -> None:
    """The check itself can fail: the texts issue 11 quotes are all caught."""
    bad = ["ACR CT phantom (STANDARDS.md B.1)", "PIU (C.1 #5, [C])", "tagged [P]",
           "pylinac acr.py piu_passed", "one of two disagreeing hazen tasks [P]",
           "hazen hazenlib/tasks/acr_slice_thickness.py", "default 1.25, [U]"]
    assert all(_offences([("x", b)]) for b in bad)
    good = ["NEMA NU 2-2018 section 7.4 (image quality)",
            "value used by the open-source hazen project; not found in the ACR text",
            "IEC 61223-3-5:2019", "AAPM Report 233 (2019)", "EARL (EANM Research Ltd)"]
    assert not _offences(("x", g) for g in good)


def _links(texts: Iterator[tuple[str, str]]) -> Iterator[tuple[str, str, str | None]]:
    for where, text in texts:
        for m in LINK.finditer(text):
            yield where, m.group(1), m.group(2)


def test_every_docs_standards_link_exists_with_its_anchor() -> None:
    seen = 0
    for where, page, anchor in _links(iter([*analysis_texts(), *spec_texts(),
                                            *source_texts()])):
        seen += 1
        target = DOCS / page
        assert target.is_file(), f"{where}: links to missing docs/standards/{page}"
        if anchor:
            assert anchor in anchors(target), f"{where}: no #{anchor} in docs/standards/{page}"
    assert seen >= 40  # the check ran on the real texts


def test_links_between_reference_pages_exist() -> None:
    rel_link = re.compile(r"\]\(([^)#\s]*)(?:#([\w-]+))?\)")
    for page in DOCS.glob("*.md"):
        for m in rel_link.finditer(page.read_text(encoding="utf-8")):
            target_name, anchor = m.group(1), m.group(2)
            if target_name.startswith(("http:", "https:")):
                continue
            target = (page.parent / target_name).resolve() if target_name else page
            assert target.is_file(), f"{page.name}: link to missing {target_name}"
            if anchor:
                assert anchor in anchors(target), f"{page.name}: no #{anchor} in {target_name}"


def test_every_analysis_and_every_limit_links_to_its_reference_page() -> None:
    from scanbench.store.models import Result as StoredResult

    column_type = StoredResult.__table__.c.standard.type
    assert isinstance(column_type, String) and column_type.length is not None
    room = column_type.length  # the node stores the text in this column
    for aid, a in all_analyses().items():
        assert LINK.search(a.standard), f"{aid}: standard text has no docs/standards link"
        assert len(a.standard) <= room, f"{aid}: standard text longer than the store's {room}"
    for name in list_specs():
        for i, r in enumerate(load_spec(name).rules):
            assert LINK.search(r.source), f"spec {name} rules[{i}]: source has no link"


PARAM_READ = re.compile(
    r"""(?:params\.get\(|params\[|_param\(params, |float_param\(params, |"""
    r"""_positive_float\((?:params|rest), |_param_or_tag\(params, )\s*["']([a-z_]+)["']"""
    r"""|["']([a-z_]+)["'] in params\b""")
INTERNAL = {"localiser"}  # a Series the ACR suite passes to one of its tests, not a --param


def test_every_parameter_an_analysis_reads_is_described() -> None:
    import importlib
    import inspect

    for aid, a in sorted(all_analyses().items()):
        module = importlib.import_module(type(a).__module__)
        read = {g for m in PARAM_READ.finditer(inspect.getsource(module)) for g in m.groups()
                if g} - INTERNAL
        declared = {p.name for p in parameters_of(a)}
        assert read <= declared, f"{aid} reads undeclared parameters {sorted(read - declared)}"
        for p in parameters_of(a):
            assert p.description and p.default_text(), (aid, p.name)
