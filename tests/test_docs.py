"""The README is a landing page and the documentation's links hold, on the repository as in the site
(`make docs` builds the site with --strict; these checks need no MkDocs)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")
# Notes other branches leave for the coordinator to fold into pages; not part of the site.
INCOMING = DOCS / "_incoming"


def pages():
    return [path for path in sorted(DOCS.rglob("*.md")) if INCOMING not in path.parents]


def test_the_readme_is_a_short_landing_page_that_links_every_manual_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # What, install, quick start, the pretrained model, streaming, the tasks' table, links: about two screens.
    assert len(readme.splitlines()) <= 120, "the manual belongs in docs/; keep the README a landing page"
    for heading in ("## Install", "## Quick start", "## The five tasks", "## Documentation"):
        assert heading in readme
    linked = {ROOT / target for target in LINK.findall(readme)}
    manual = {path for path in pages() if path.parent == DOCS and path.name != "index.md"}
    assert manual <= linked, sorted(str(path.relative_to(ROOT)) for path in manual - linked)


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "experiments" / "RESULTS.md", *pages()],
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_name_files_that_exist(path):
    text = path.read_text(encoding="utf-8")
    broken = [target for target in LINK.findall(text)
              if not re.match(r"^([a-z]+:|#|/)", target)
              and not (path.parent / target.partition("#")[0]).exists()]
    assert broken == []


def test_every_page_is_in_the_navigation_and_every_api_module_exists():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", config, re.MULTILINE))
    assert in_nav == {str(path.relative_to(DOCS)) for path in pages()}
    modules = [name for path in (DOCS / "api").glob("*.md")
               for name in re.findall(r"^::: (\S+)$", path.read_text(encoding="utf-8"), re.MULTILINE)]
    source = {name: ROOT / name.replace(".", "/") for name in modules}
    missing = [name for name, path in source.items()
               if not (path.with_name(path.name + ".py").exists() or (path / "__init__.py").exists())]
    assert modules and missing == []  # read from the source, as mkdocstrings does: nothing imported
