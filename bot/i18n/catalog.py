"""Refresh the message catalogs from the code, with Babel: `python -m bot.i18n.catalog`.

1. extract every `gettext` / `ngettext` / `N_` string of `bot/` (the map in `babel.cfg`)
   into the template `bot/i18n/locales/sahelwatch.pot`;
2. update each language's `sahelwatch.po` from it (new strings appear untranslated, or
   fuzzy when Babel finds a near one; strings gone from the code are dropped);
3. compile each `.po` into the `.mo` the package ships (fuzzy entries are left out).

Then translate what is new in the `.po` (untranslated or `#, fuzzy`) and run it again.
`--check` changes nothing and exits 1 when the catalogs are behind the code: a string with
no translation, a fuzzy one, a placeholder that differs, or a `.mo` older than its `.po`.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from bot.i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGES, LOCALES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "babel.cfg"
TEMPLATE = LOCALES / f"{DOMAIN}.pot"
PROJECT = "Sahel Watch"
COMMENT_TAGS = ("Translators:",)
TRANSLATED = tuple(lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE)
# a fixed date keeps the files byte-for-byte the same when nothing else changed
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str) -> Path:
    return po_path(language).with_suffix(".mo")


def _mapping() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    with CONFIG.open(encoding="utf-8") as file:
        method_map, options_map = parse_mapping_cfg(file, filename=str(CONFIG))  # type: ignore[no-untyped-call]
    return list(method_map), dict(options_map)


def extract() -> Catalog:
    """Every marked string of the code, with where it is used."""
    method_map, options_map = _mapping()
    template = Catalog(project=PROJECT, domain=DOMAIN, creation_date=EPOCH, fuzzy=False)
    package = ROOT / "bot"

    def inside(directory: str) -> bool:
        path = Path(directory).resolve()
        return path == ROOT or path.is_relative_to(package)

    found = extract_from_dir(
        ROOT,
        method_map,
        options_map,
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
        directory_filter=inside,
    )
    for filename, lineno, message, comments, context in found:
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def _read(path: Path, language: str) -> Catalog:
    if not path.exists():
        return Catalog(locale=language, project=PROJECT, domain=DOMAIN, creation_date=EPOCH)
    with path.open("rb") as file:
        return read_po(file, locale=language, domain=DOMAIN)


def _po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=96, sort_by_file=True, ignore_obsolete=True, include_lineno=False)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def updated(language: str, template: Catalog) -> Catalog:
    """The language's catalog brought up to `template` (translations kept where they fit)."""
    catalog = _read(po_path(language), language)
    catalog.update(template, update_creation_date=False)
    catalog.revision_date = EPOCH
    catalog.fuzzy = False
    return catalog


def problems(catalog: Catalog) -> Iterator[str]:
    """What keeps `catalog` from being complete: untranslated, fuzzy, broken placeholders."""
    for message in catalog:
        if not message.id:
            continue
        name = _name(message)
        if message.fuzzy:
            yield f"fuzzy: {name}"
        elif not _translated(message):
            yield f"untranslated: {name}"
    for message, errors in catalog.check():
        if message.fuzzy or not _translated(message):
            continue  # said above
        for error in errors:
            yield f"{error}: {_name(message)}"


def _name(message: Message) -> str:
    msgid = message.id[0] if isinstance(message.id, tuple) else message.id
    return repr(msgid[:70])


def _translated(message: Message) -> bool:
    if isinstance(message.string, tuple | list):
        return all(message.string)
    return bool(message.string)


def refresh() -> list[str]:
    """Extract, update and compile every catalog; the problems left to translate."""
    template = extract()
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    TEMPLATE.write_bytes(_po_bytes(template))
    left: list[str] = []
    for language in TRANSLATED:
        catalog = updated(language, template)
        po_path(language).parent.mkdir(parents=True, exist_ok=True)
        po_path(language).write_bytes(_po_bytes(catalog))
        mo_path(language).write_bytes(mo_bytes(catalog))
        left += [f"{language}: {problem}" for problem in problems(catalog)]
    return left


def check() -> list[str]:
    """Like `refresh`, writing nothing: what is behind the code."""
    template = extract()
    left: list[str] = []
    for language in TRANSLATED:
        stored = _read(po_path(language), language)
        catalog = updated(language, template)
        wanted = {m.id for m in catalog if m.id}
        have = {m.id for m in stored if m.id}
        left += [
            f"{language}: not in the .po: {_name(m)}" for m in catalog if m.id and m.id not in have
        ]
        left += [
            f"{language}: no longer used: {_name(m)}" for m in stored if m.id and m.id not in wanted
        ]
        left += [f"{language}: {problem}" for problem in problems(stored)]
        shipped = mo_path(language).read_bytes() if mo_path(language).exists() else b""
        if shipped != mo_bytes(stored):
            left.append(f"{language}: {mo_path(language).name} is not compiled from the .po")
    return left


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.i18n.catalog",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if behind")
    args = parser.parse_args(argv)
    if not CONFIG.exists():
        print(f"{CONFIG} not found: run this in a checkout of the repository", file=sys.stderr)
        return 2
    left = check() if args.check else refresh()
    for line in left:
        print(line)
    if not args.check:
        print(f"catalogs written under {LOCALES.relative_to(ROOT)}; {len(left)} to translate")
    return 1 if left and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
