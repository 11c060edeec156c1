"""The demo knowledge base: the Python standard library's own documentation, read at run time via pydoc.

Nothing here is written by us or shipped in the repository: every article is the pydoc text of a stdlib
module on the user's machine, with a link to its page on docs.python.org.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import pkgutil
import pydoc
import sys
import warnings
from collections.abc import Iterable

from tqdm.auto import tqdm

from .knowledge_base import Article

__all__ = ["stdlib_articles", "DEFAULT_MODULES", "DEMO_KB_VERSION"]

# Bump when the way articles are built changes, so cached demo indexes are rebuilt.
DEMO_KB_VERSION = 2

logger = logging.getLogger(__name__)

# Modules with side effects on import, platform-only modules, and internals that are not user documentation.
_SKIP_PREFIXES = (
    "_",
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "test",
    "lib2to3",
    "ensurepip",
    "pydoc_data",
    "msilib",
    "winreg",
    "winsound",
    "_msi",
    "nt",
    "msvcrt",
    "xxsubtype",
    "sre_",
    "encodings",
    "distutils",
    "__phello__",
    "pyexpat",
    "idle",
    "ossaudiodev",
    "spwd",
    "crypt",
    "nis",
    "audioop",
    "cgi",
    "cgitb",
    "chunk",
    "imghdr",
    "mailcap",
    "nntplib",
    "pipes",
    "sndhdr",
    "sunau",
    "telnetlib",
    "uu",
    "xdrlib",
    "aifc",
    "asynchat",
    "asyncore",
    "smtpd",
    "imp",
)

DEFAULT_MODULES: tuple[str, ...] = tuple(
    sorted(m for m in getattr(sys, "stdlib_module_names", ()) if not m.startswith(_SKIP_PREFIXES))
)

_MAX_TEXT = 6000


def _module_article(name: str, version: str) -> Article | None:
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            mod = importlib.import_module(name)
            text = pydoc.render_doc(mod, title="%s", renderer=pydoc.plaintext)  # type: ignore[attr-defined]  # not in typeshed
    except Exception:  # any stdlib module may fail to import on some platform; skip it
        logger.debug("skipping %s", name, exc_info=True)
        return None
    doc = (mod.__doc__ or "").strip()
    summary = _summary(doc)
    if not summary:
        return None  # undocumented modules make poor articles
    title = f"{name} — {summary}"
    body = _reference_sections(pydoc.plain(text))
    return Article(
        id=name,
        title=title[:200],
        url=f"https://docs.python.org/{version}/library/{name}.html",
        text=(doc + "\n\n" + body)[:_MAX_TEXT],
        tags=("stdlib", name.split(".")[0]),
        locale="en",
    )


# pydoc sections that repeat the docstring (DESCRIPTION) or are boilerplate, not reference material
_DROP_SECTIONS = {"NAME", "MODULE REFERENCE", "DESCRIPTION", "FILE", "MODULE DOCS"}


def _reference_sections(plain: str) -> str:
    """pydoc's text without the sections that repeat the docstring or are boilerplate."""
    keep: list[str] = []
    dropping = True  # the first line ("built-in module x" / "Help on module x") is boilerplate too
    for line in plain.splitlines():
        if line[:1].isupper() and line.strip() == line and line.upper() == line and len(line) < 40:
            dropping = line in _DROP_SECTIONS
        if not dropping:
            keep.append(line)
    return "\n".join(keep).strip()


def _summary(doc: str, limit: int = 90) -> str:
    """The docstring's first sentence (first paragraph, cut at a word boundary)."""
    para = " ".join(doc.split("\n\n", 1)[0].split())
    sentence = para.split(". ", 1)[0].rstrip(".")
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0] + "…"
    return sentence


def _with_submodules(names: Iterable[str]) -> list[str]:
    """Each package plus its public direct submodules (json -> json.decoder, json.encoder, …)."""
    out = []
    for name in names:
        out.append(name)
        spec = importlib.util.find_spec(name) if not name.startswith(_SKIP_PREFIXES) else None
        if spec is None or not spec.submodule_search_locations:
            continue
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            if not info.name.startswith(("_", "test")) and not info.name.endswith("__main__"):
                out.append(f"{name}.{info.name}")
    return out


def stdlib_articles(modules: Iterable[str] | None = None, *, progress: bool = True) -> list[Article]:
    """One article per documented stdlib module (pydoc text), built now from this interpreter."""
    names = list(modules) if modules is not None else _with_submodules(DEFAULT_MODULES)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = []
    for name in tqdm(names, desc="reading stdlib docs", unit="mod", disable=not progress):
        art = _module_article(name, version)
        if art is not None:
            out.append(art)
    return out
