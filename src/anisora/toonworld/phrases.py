"""Word banks for ToonWorld subtitles, signs and captions.

The shipped font (assets/toonworld-sans.ttf) is subset to exactly these characters plus printable ASCII;
`scripts/build_toonworld_font.py` rebuilds it after a change here.
"""

SUBTITLES_LATIN = (
    "Where are you going?",
    "Wait for me!",
    "I found it!",
    "Look over there.",
    "Let's go home.",
    "That was close.",
    "Are you okay?",
    "It's getting late.",
    "Trust me.",
    "Not again...",
    "See you tomorrow!",
    "What was that?",
    "Hurry up!",
    "I'm hungry.",
    "We did it!",
    "Don't give up.",
)

SUBTITLES_CJK = (
    "你要去哪里？",
    "等等我！",
    "我找到了！",
    "快看那边。",
    "我们回家吧。",
    "好险啊。",
    "你没事吧？",
    "天快黑了。",
    "相信我。",
    "明天见！",
    "加油！",
    "待って！",
    "見つけた！",
    "また明日！",
    "大丈夫？",
    "行こう！",
)

SIGNS = ("CAFE", "BOOKS", "HOTEL", "商店", "书店", "喫茶", "OPEN", "花屋")


def all_text() -> str:
    """Every character ToonWorld may render (used to subset the shipped font)."""
    return "".join(SUBTITLES_LATIN + SUBTITLES_CJK + SIGNS)
