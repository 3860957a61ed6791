"""Rebuild src/anisora/toonworld/assets/toonworld-sans.ttf, a subset of WenQuanYi Micro Hei.

WenQuanYi Micro Hei is dual-licensed Apache-2.0 / GPL-3.0 (we use it under Apache-2.0). The subset holds
printable ASCII plus the CJK characters in anisora.toonworld.phrases, so ToonWorld renders the same pixels on
every machine without a system font. Needs fonttools (dev extra) and Debian's fonts-wqy-microhei.

    python scripts/build_toonworld_font.py [/usr/share/fonts/truetype/wqy/wqy-microhei.ttc]
"""

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

from anisora.toonworld.phrases import all_text

SOURCE = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
TARGET = Path(__file__).resolve().parents[1] / "src/anisora/toonworld/assets/toonworld-sans.ttf"


def main(source: str = SOURCE) -> None:
    font = TTCollection(source).fonts[0]
    chars = {chr(c) for c in range(0x20, 0x7F)} | set(all_text())
    options = subset.Options()
    options.name_IDs = ["*"]  # keep copyright and licence records
    options.hinting = False
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(chars)))
    subsetter.subset(font)
    font.save(TARGET)
    print(f"{TARGET}: {TARGET.stat().st_size} bytes, {len(chars)} characters")


if __name__ == "__main__":
    main(*sys.argv[1:])
