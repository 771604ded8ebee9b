"""The committee report joined from documents rendered apart (services/reports.py):
their pages in order, the report's header and footer laid over every page, and one
embedded copy of each font.

pikepdf (qpdf) loads here, where a report is joined, not in every web process.
"""
import io
import re
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pikepdf
import uharfbuzz as hb


def page_count(path):
    with pikepdf.open(path) as document:
        return len(document.pages)


def join(own, at, parts, furniture, title, keywords, output, scratch):
    """Write to `output` (a file open for writing) the PDF of the report: the pages of
    `own` (bytes: the report's own document) with the pages of `parts` (paths, in
    order) put before its page index `at`, each page under its header and footer:
    `furniture(first, count)` gives the bytes of a document of `count` pages holding
    the furniture alone of the report's pages `first` (from 1) onwards.

    Each piece is stamped apart into `scratch` (a directory) and let go before the
    next, so that memory holds one piece's overlays at a time, not the report's."""
    with pikepdf.open(io.BytesIO(own)) as base:
        pieces = [(base, slice(0, at)), *[(path, slice(None)) for path in parts],
                  (base, slice(at, None))]
        stamped, first = [], 1
        for n, (source, pages) in enumerate(pieces):
            with ExitStack() as opened:
                if not isinstance(source, pikepdf.Pdf):
                    source = opened.enter_context(pikepdf.open(source))
                chosen = source.pages[pages]
                if not chosen:
                    continue
                over = opened.enter_context(
                    pikepdf.open(io.BytesIO(furniture(first, len(chosen)))))
                piece = opened.enter_context(pikepdf.new())
                piece.pages.extend(chosen)
                for page, furniture_page in zip(piece.pages, over.pages, strict=True):
                    page.add_overlay(furniture_page)
                stamped.append(Path(scratch) / f"stamped-{n}.pdf")
                piece.save(stamped[-1])
                first += len(chosen)
        lang = str(base.Root.get("/Lang", "zh-CN"))
    with ExitStack() as opened:
        report = opened.enter_context(pikepdf.new())
        report.pages.extend([page for path in stamped
                             for page in opened.enter_context(pikepdf.open(path)).pages])
        report.Root.Lang = pikepdf.String(lang)
        share_fonts(report)
        report.docinfo["/Title"] = title
        report.docinfo["/Keywords"] = keywords
        report.docinfo["/Creator"] = "Tierdesk"
        # Straight to the file: a report of a thousand sheets is never held whole.
        report.save(output)


# Each WeasyPrint document embeds a subset of every font it uses: the glyphs its text
# needs, numbered as in the whole font. A report joined from many documents would
# carry as many copies of the CJK font as it has parts, most glyphs again and again.
# share_fonts() gives all copies of one font a single subset of the font file that
# holds every glyph any of them had (HarfBuzz, with the options WeasyPrint subsets
# with), their widths and their text mapping, as one pass would have embedded it.

_SUBSET_TAG = re.compile(r"^/?[A-Z]{6}\+")
# The tables WeasyPrint drops when it subsets a font (weasyprint/pdf/fonts.py).
_DROPPED_TABLES = ("BASE", "DSIG", "EBDT", "EBLC", "EBSC", "GPOS", "GSUB", "JSTF", "LTSH",
                   "PCLT", "SVG ")


def _fonts_of(resources, seen):
    """The Type0 fonts used through `resources`, in forms (overlays) too."""
    for _name, font in (resources.get("/Font") or {}).items():
        if font.get("/Subtype") == "/Type0":
            yield font
    for _name, form in (resources.get("/XObject") or {}).items():
        if form.get("/Subtype") == "/Form" and "/Resources" in form and \
                form.objgen not in seen:
            seen.add(form.objgen)
            yield from _fonts_of(form.Resources, seen)


def _font_file(font):
    descriptor = font.DescendantFonts[0].FontDescriptor
    return descriptor.get("/FontFile3")


def _widths(font):
    """{glyph: width} of a CID font's /W array ([first [w1 w2 …] …])."""
    widths, items = {}, list(font.DescendantFonts[0].get("/W", []))
    i = 0
    while i < len(items):
        first, run = int(items[i]), items[i + 1]
        if isinstance(run, pikepdf.Array):
            widths.update({first + n: int(w) for n, w in enumerate(run)})
            i += 2
        else:  # first last width
            widths.update(dict.fromkeys(range(first, int(run) + 1), int(items[i + 2])))
            i += 3
    return widths


def _text_map(font):
    """{glyph: "<hex of its text>"} of a font's ToUnicode CMap (WeasyPrint writes
    bfchar entries only)."""
    cmap = font.ToUnicode.read_bytes().decode("latin-1") if "/ToUnicode" in font else ""
    found = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for glyph, text in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]*)>", block):
            found[int(glyph, 16)] = text
    return found


def _cmap_stream(document, text_map):
    entries = sorted(text_map.items())
    blocks = []
    for start in range(0, len(entries), 100):
        chunk = entries[start:start + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "".join(
            f"<{glyph:04x}> <{text}>\n" for glyph, text in chunk) + "endbfchar")
    cmap = ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo\n<< /Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <ffff>\nendcodespacerange\n"
            + "\n".join(blocks) + "\nendcmap\nCMapName currentdict /CMap defineresource pop\n"
            "end\nend")
    return pikepdf.Stream(document, cmap.encode("latin-1"))


def _original_font(font_file):
    """The HarfBuzz face of the installed font an embedded subset was cut from, found
    by its PostScript name through fontconfig (as WeasyPrint found it), or None."""
    name = hb.Face(hb.Blob(font_file.read_bytes())).get_name(
        hb.OTNameIdPredefined.POSTSCRIPT_NAME)
    fc_match = shutil.which("fc-match")
    if not name or fc_match is None:
        return None
    # The name is the installed font's own, read back from what WeasyPrint embedded.
    found = subprocess.run([fc_match, "-f", "%{file}\n%{index}\n%{postscriptname}",  # noqa: S603
                            f":postscriptname={name}"], capture_output=True, text=True,
                           check=False).stdout.split("\n")
    if len(found) < 3 or found[2] != name:
        return None
    return hb.Face(hb.Blob.from_file_path(found[0]), int(found[1]))


def _subset(face, glyphs):
    """The font file of `face` cut down to `glyphs`, numbered as in the whole font."""
    wanted = hb.SubsetInput()
    for glyph in glyphs:
        wanted.glyph_set.add(glyph)
    wanted.flags = (hb.SubsetFlags.RETAIN_GIDS | hb.SubsetFlags.PASSTHROUGH_UNRECOGNIZED
                    | hb.SubsetFlags.DESUBROUTINIZE | hb.SubsetFlags.NOTDEF_OUTLINE)
    dropped = wanted.sets(hb.SubsetInputSets.DROP_TABLE_TAG)
    for tag in _DROPPED_TABLES:
        dropped.add(int.from_bytes(tag.encode(), "big"))
    return hb.subset(face, wanted).blob.data


def share_fonts(document):
    """Give the fonts of a pikepdf `document` joined from several documents one
    embedded subset each (see above). Fonts it cannot place are left as they are."""
    groups, seen = {}, set()
    for page in document.pages:
        for font in _fonts_of(page.Resources, seen):
            if _font_file(font) is not None:
                name = _SUBSET_TAG.sub("", str(font.DescendantFonts[0].BaseFont))
                groups.setdefault(name, {})[font.objgen] = font
    for fonts in groups.values():
        fonts = list(fonts.values())
        if len({_font_file(font).objgen for font in fonts}) < 2:
            continue
        original = _original_font(_font_file(fonts[0]))
        if original is None:
            continue
        widths, text_map = {}, {}
        for font in fonts:
            widths.update(_widths(font))
            text_map.update(_text_map(font))
        font_file = pikepdf.Stream(document, _subset(original, sorted(widths)))
        font_file.Subtype = _font_file(fonts[0]).Subtype
        to_unicode = _cmap_stream(document, text_map)
        width_array = pikepdf.Array()
        for glyph, width in sorted(widths.items()):
            width_array.extend([glyph, pikepdf.Array([width])])
        for font in fonts:
            font.DescendantFonts[0].FontDescriptor.FontFile3 = font_file
            font.DescendantFonts[0].W = width_array
            font.ToUnicode = to_unicode
