"""Sphinx extension of the book: the site as a reader opens it, offline included, with a clean browser console.

* **MathJax served from the site.** Sphinx loads MathJax from a CDN by default; a reader who downloads the site, or
  opens it without a network, then sees raw ``\\( ... \\)``. One pinned MathJax release is taken from the npm
  registry (a package registry; the tarball is checked against its published sha512); the files a page needs (the
  TeX-and-MathML-to-HTML component, its TeX extensions loaded on demand, its woff fonts, the menu and
  accessibility components, and the licence) are kept in a cache and added to the site's ``_static/mathjax``.
  ``LTDD_MATHJAX_TGZ`` names a local copy of the tarball where no registry can be reached.
* **Each inline script once.** sphinx-thebe adds its inline configuration (``const THEBE_JS_URL = ...``) every
  time documents are read, and a second copy throws a SyntaxError on every page; a page keeps the first.
* **A colour mode to start from.** Without one the theme logs an error on a reader's first visit and falls back
  to following the system; the book starts light (its figures are drawn on white), and the switch stays.

Used by _config.yml (``sphinx.local_extensions``); tests/test_book.py opens every built page in Chromium.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

VERSION = "3.2.2"
TARBALL = f"https://registry.npmjs.org/mathjax/-/mathjax-{VERSION}.tgz"
SHA512 = "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
ENTRY = "tex-mml-chtml.js"            # what Sphinx loads from the CDN by default
KEEP = (ENTRY, "input/tex/extensions/", "output/chtml/fonts/woff-v2/", "ui/", "a11y/")


def cache_dir() -> Path:
    """Where the kept files live: ``$LTDD_CACHE/site/mathjax-<version>`` (the book's cache root)."""
    root = Path(os.environ.get("LTDD_CACHE") or Path.home() / ".cache" / "ltdd")
    return root / "site" / f"mathjax-{VERSION}"


def _tarball() -> bytes:
    local = os.environ.get("LTDD_MATHJAX_TGZ")
    try:
        data = Path(local).read_bytes() if local else urllib.request.urlopen(TARBALL, timeout=60).read()
    except OSError as e:
        raise RuntimeError(f"MathJax {VERSION} could not be fetched from {local or TARBALL} ({e}); download that "
                           "tarball where a registry can be reached and set LTDD_MATHJAX_TGZ to its path") from e
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != SHA512:
        raise RuntimeError(f"MathJax tarball {local or TARBALL}: sha512 {got} is not the registry's {SHA512}")
    return data


def vendored() -> Path:
    """The directory holding ``mathjax/`` (the kept files), fetched and unpacked once, atomically."""
    target = cache_dir()
    if (target / "mathjax" / ENTRY).is_file():
        return target
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(_tarball()), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/")
            rel = name.removeprefix("es5/") if name.startswith("es5/") else None
            if member.isfile() and (name == "LICENSE" or (rel and rel.startswith(KEEP))):
                out = tmp / "mathjax" / (rel or name)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:                     # another build got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _config_inited(app, config) -> None:
    config.html_static_path = list(config.html_static_path) + [str(vendored())]
    config.mathjax_path = f"mathjax/{ENTRY}"      # relative: served from the site's _static
    config.html_context = {"default_mode": "light", **(config.html_context or {})}


def _scripts_once(app, pagename, templatename, context, doctree) -> None:
    scripts, seen = context.get("script_files"), set()
    if scripts is None:
        return
    kept = []
    for js in scripts:
        # an inline script is added once with filename None and once with "": the same script
        key = (str(getattr(js, "filename", js) or ""), repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("config-inited", _config_inited, priority=900)
    app.connect("html-page-context", _scripts_once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
