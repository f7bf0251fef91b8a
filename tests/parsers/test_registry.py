"""The registry: what the parser modules declare is reachable through detection, never
clashes, plugs in with one declaration, and is listed without loading a parsing library."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowra_worker.document import Block, BlockKind, Unit
from knowra_worker.errors import KnowraError, UnsupportedFormat
from knowra_worker.parsers import registry
from knowra_worker.parsers.base import BaseDocument, Content, Format
from knowra_worker.parsers.detect import PDF, PLAIN

from .conftest import DATA, read_blocks

FORMATS = registry.formats()
HEAVY = ("pypdfium2", "docx", "pptx", "openpyxl", "lxml", "selectolax", "markdown_it")


def samples(declared: Format) -> list[Path]:
    """The files in tests/data named with one of the format's extensions."""
    return [path for path in sorted(DATA.iterdir()) if path.suffix.lower() in declared.extensions]


def detected(path: Path) -> str | None:
    try:
        return registry.detect(path)
    except KnowraError:  # the empty and the encrypted samples
        return None


@pytest.mark.parametrize("declared", FORMATS, ids=lambda declared: declared.name)
def test_every_declared_format_is_reachable_through_detection(declared: Format) -> None:
    assert declared.mime_type in {detected(path) for path in samples(declared)}


@pytest.mark.parametrize(
    ("declared", "extension"),
    [(declared, extension) for declared in FORMATS for extension in declared.extensions],
    ids=lambda value: value.name if isinstance(value, Format) else value,
)
def test_every_declared_extension_names_its_format(
    tmp_path: Path, declared: Format, extension: str
) -> None:
    sample = next(path for path in samples(declared) if detected(path) == declared.mime_type)
    renamed = tmp_path / f"sample{extension}"
    shutil.copyfile(sample, renamed)
    assert registry.detect(renamed) == declared.mime_type


def test_declarations_are_well_formed_and_do_not_clash() -> None:
    names = [declared.name for declared in FORMATS]
    mime_types = [declared.mime_type for declared in FORMATS]
    extensions = [extension for declared in FORMATS for extension in declared.extensions]
    assert len(set(names)) == len(names) and all(names)
    assert len(set(mime_types)) == len(mime_types)
    assert len(set(extensions)) == len(extensions)
    assert all(ext.startswith(".") and ext == ext.lower() for ext in extensions)
    assert registry.supported_formats() == sorted(names)


def test_a_clashing_declaration_is_refused() -> None:
    table = registry.Registry(FORMATS)
    pdf = table.get(PDF)
    assert pdf is not None
    with pytest.raises(ValueError, match=r"extension \.pdf already declared by 'pdf'"):
        table.add(dataclasses.replace(pdf, name="pdf2", mime_type="application/x-pdf"))
    with pytest.raises(ValueError, match="MIME type already declared by 'pdf'"):
        table.add(dataclasses.replace(pdf, name="acrobat", extensions=(".acrobat",)))
    with pytest.raises(ValueError, match="short name already declared for text/plain"):
        table.add(
            dataclasses.replace(pdf, name="txt", mime_type="application/x-pdf", extensions=())
        )
    table.add(dataclasses.replace(pdf, extensions=(".pdf", ".ai")), replace=True)
    assert table.get(PDF) == dataclasses.replace(pdf, extensions=(".pdf", ".ai"))


def test_listing_and_detecting_formats_loads_no_parsing_library() -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from knowra_worker.parsers import registry\n"
        f"heavy = {HEAVY!r}\n"
        "def loaded(): return sorted(name for name in heavy if name in sys.modules)\n"
        "registry.supported_formats()\n"
        "for path in sys.argv[1:]: registry.detect(Path(path))\n"
        "print(loaded())\n"
        "registry.open_document(Path(sys.argv[1])).close()\n"
        "print(loaded())\n"
    )
    paths = [str(DATA / name) for name in ("word_sample.docx", "multi_page.pdf", "mixed.md")]
    run = subprocess.run(
        [sys.executable, "-c", script, *paths], capture_output=True, text=True, check=True
    )
    before, after = run.stdout.splitlines()
    assert before == "[]"
    assert "'docx'" in after and "'lxml'" in after  # opening a file does load its library


class StubDocument(BaseDocument):
    """A stand-in parser: the file's text as one paragraph."""

    unit_name = "section"
    units_total = 1
    units_total_exact = True

    def __init__(self, path: Path, mime_type: str) -> None:
        self.mime_type = mime_type
        self.text = path.read_bytes().decode("utf-8", "replace").strip()

    def units(self, start: int = 0) -> Iterator[Unit]:
        if start == 0:
            yield Unit(0, [Block(BlockKind.PARAGRAPH, self.text)])


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in formats in a registry of the test's own, so that `register` stays local."""
    monkeypatch.setattr(registry, "_registry", registry.Registry(FORMATS))


@pytest.mark.usefixtures("own_registry")
def test_a_text_format_plugs_in_with_one_declaration(tmp_path: Path) -> None:
    path = tmp_path / "notes.rst"
    path.write_text("Title\n=====\n", encoding="utf-8")
    assert registry.detect(path) == PLAIN
    registry.register(Format("rst", "text/x-rst", (".rst",), Content.TEXT, StubDocument))
    assert registry.detect(path) == "text/x-rst"
    assert "rst" in registry.supported_formats()
    assert read_blocks(path) == [Block(BlockKind.PARAGRAPH, "Title\n=====")]


@pytest.mark.usefixtures("own_registry")
def test_a_binary_format_plugs_in_with_its_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "scan.dat"
    path.write_bytes(b"KNWR\x00\x01" + bytes(range(256)))
    with pytest.raises(UnsupportedFormat, match="application/octet-stream"):
        registry.open_document(path)
    declared = Format(
        "knwr", "application/x-knwr", (".knwr",), Content.BINARY, StubDocument, magic=(b"KNWR\0",)
    )
    registry.register(declared)
    assert registry.detect(path) == "application/x-knwr"
    with registry.open_document(path) as doc:
        assert doc.mime_type == "application/x-knwr"


@pytest.mark.usefixtures("own_registry")
def test_a_plug_in_can_take_over_a_built_in_format() -> None:
    path = DATA / "text_crlf.txt"
    assert "\r" not in read_blocks(path)[0].text  # the built-in parser normalises line breaks
    registry.register(Format("txt", PLAIN, (".txt", ".text"), Content.TEXT, StubDocument))
    assert registry.parser_for(PLAIN) is StubDocument
    assert "\r\n" in read_blocks(path)[0].text


def test_the_formats_the_product_promises_are_declared() -> None:
    promised = {"pdf", "docx", "pptx", "xlsx", "html", "md", "txt", "csv"}  # as the README says
    assert promised <= set(registry.supported_formats())


def test_preload_imports_what_every_parser_names_and_nothing_is_left_for_the_first_task(
) -> None:  # fmt: skip
    """A worker process warms up with registry.preload(): afterwards opening a document of
    each kind imports no further parsing library."""
    script = (
        "import sys, json\n"
        "from knowra_worker.parsers import registry\n"
        "loaded = registry.preload()\n"
        "before = set(sys.modules)\n"
        "from pathlib import Path\n"
        f"for name in {['multi_page.pdf', 'word_sample.docx', 'powerpoint_sample.pptx', 'xlsx_01.xlsx', 'example_03.html', 'mixed.md']!r}:\n"  # noqa: E501
        f"    with registry.open_document(Path({str(DATA)!r}) / name) as doc:\n"
        "        list(doc.units())\n"
        "heavy = ('pypdfium2', 'docx', 'pptx', 'openpyxl', 'lxml', 'selectolax', 'markdown_it')\n"
        "late = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in heavy)\n"
        "print(json.dumps([loaded, late]))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip
    loaded, late = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"pypdfium2", "docx", "pptx", "openpyxl", "selectolax.lexbor", "markdown_it"} <= set(
        loaded
    )
    assert late == [], f"imported on the first documents: {late}"
