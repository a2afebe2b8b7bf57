"""MkDocs hook: links written for a reader of the repository, and pages that include a repository file.

The pages are Markdown a reader follows on the repository too, so a page may link to any file of it
(``[the template](../../experiments/templates/my_sounds.toml)``). In the site, a link into ``docs/``
points at that page, a link to an included file at the page that includes it, and a link to any other file
(a config, a test) keeps its text without the link, since the site does not hold that file.

A page holding the line ``<!-- include: PATH -->`` (PATH relative to the repository root) gets that file's
text there, its links rewritten the same way, so that README.md stays the one source of the home page and
experiments/RESULTS.md of the results.

The docstrings name other objects as Sphinx roles (``:func:`build```), which Markdown renders as the role
followed by the code; the API pages show the code alone.
"""

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj|const):(?=<code>)")
INCLUDED_BY = {}  # repository path of an included file -> the docs page (relative to docs/) including it


def on_files(files, config, **kwargs):
    INCLUDED_BY.clear()
    for file in files.documentation_pages():
        for path in INCLUDE.findall(Path(file.abs_src_path).read_text(encoding="utf-8")):
            INCLUDED_BY[path] = file.src_uri
    return files


def on_page_markdown(markdown, page, **kwargs):
    page_path = page.file.src_uri
    markdown = _site_links(markdown, f"docs/{page_path}", page_path)
    return INCLUDE.sub(
        lambda match: _site_links((ROOT / match.group(1)).read_text(encoding="utf-8"), match.group(1), page_path),
        markdown)


def on_page_content(html, page, **kwargs):
    return SPHINX_ROLE.sub("", html)


def _site_links(text, source, page):
    """``text`` of the repository file ``source`` with its relative links pointing into the site from
    ``page`` (a path under docs/)."""
    page_folder = posixpath.dirname(page)

    def rewrite(match):
        label, target = match.groups()
        if re.match(r"^([a-z]+:|#|/)", target):  # a web address, an anchor on the page, a site path
            return match.group(0)
        path, _, anchor = target.partition("#")
        repository_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if repository_path.startswith("docs/"):
            docs_path = repository_path[len("docs/"):]
        elif repository_path in INCLUDED_BY:
            docs_path = INCLUDED_BY[repository_path]
        else:
            return label
        relative = posixpath.relpath(docs_path, page_folder or ".")
        return f"[{label}]({relative}{'#' + anchor if anchor else ''})"

    return LINK.sub(rewrite, text)
