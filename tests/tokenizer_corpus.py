"""A deterministic corpus of strings for the tokenizer oracle tests and bench.

corpus(n, seed) returns n strings that cover every case issue 3 lists: English,
contractions in both cases, digit and punctuation runs, whitespace runs with
leading/trailing whitespace, \\r\\n, accented Latin, Greek, Cyrillic, CJK,
Arabic, Devanagari, emoji (ZWJ sequences, skin tones, flags), combining marks,
zero-width characters, source code, URLs, "<|endoftext|>", words of thousands
of characters, random printable strings, random valid code points, and mixes
of all of these. U+0000 is left out: the --jsonl reader cannot carry it (the C
unit tests cover it).
"""
import random
import string

ENGLISH = (
    "the of and to in is that it was for on are as with his they at be this from "
    "have or by one had not but what all were when we there can an your which their "
    "said if do will each about how up out them then she many some so these would "
    "other into has more her two like him see time could no make than first been its "
    "who now people my made over did down only way find use may water long little very "
    "after words called just where most know get through back much before go good new "
    "write our used me man too any day same right look think also around another came "
    "come work three word must because does part even place well such here take why "
    "things help put years different away again off went old number great tell men say "
    "small every found still between name should home big give air line set own under "
    "read last never us left end along while might next sound below saw something thought "
    "both few those always looked show large often together asked house don't world "
    "going want school important until form food keep children feet land side without "
    "boy once animals life enough took sometimes four head above kind began almost live "
    "page got earth need far hand high year mother light parts country father let night "
    "following picture being study second eyes soon times story boys since white days "
    "ever paper hard near sentence better best across during today others however sure "
    "means knew it's try told young miles sun ways thing whole hear example heard several "
    "change answer room sea against top turned learn point city play toward five using "
    "himself usually coffee tumeric purple Hello Washington Paris London Tuesday OpenAI"
).split()

CONTRACTIONS = [
    "don't", "DON'T", "Don't", "I'm", "I'M", "you're", "YOU'RE", "we've", "WE'VE", "she'll",
    "SHE'LL", "he'd", "HE'D", "it's", "IT'S", "can't", "CAN'T", "won't", "y'all", "'s", "'S",
    "'t", "'T", "'re", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'d", "'D", "rock 'n' roll",
    "''", "'", "'''s", "o'clock", "O'CLOCK", "students'", "ma'am", "'tis", "'Twas",
]

PUNCT_RUNS = ["...", "!!!", "???", "?!", "--", "---", "==>", "<=>", "#!/", "@@", "$$$", "%%",
              "^^", "&&", "**", "()", "[]{}", ";;", "::", "\"\"", "``", "~~~", "|||", "\\\\",
              ",,,", "!?!?", "…", "—", "–", "«»", "“”", "‘’", "¿¡", "§¶", "©®™", "°±", "€£¥"]

SCRIPTS = {
    "latin": ["café", "naïve", "façade", "Über", "straße", "Ærøskøbing", "jalapeño", "Ångström",
              "crème brûlée", "São Paulo", "Łódź", "Dvořák", "İstanbul", "ﬁancée", "œuvre",
              "Đặng Thị", "Ñandú", "ÀÉÎÕÜ"],
    "greek": ["Καλημέρα", "κόσμε", "Ελλάδα", "φιλοσοφία", "ΑΒΓΔΕ", "ἀρχή", "λόγος", "Ωμέγα"],
    "cyrillic": ["Привет", "мир", "Москва", "ЁЛКА", "щёлочь", "Україна", "Љубав", "Қазақстан"],
    "cjk": ["你好", "世界", "東京都", "日本語のテキスト", "한국어", "안녕하세요", "漢字", "中文测试",
            "ひらがな", "カタカナ", "𠀋𡈽", "ｈａｌｆｗｉｄｔｈ"],
    "arabic": ["مرحبا", "العالم", "اللغة العربية", "١٢٣٤٥", "شكراً", "فارسی", "עברית", "שלום"],
    "devanagari": ["नमस्ते", "हिन्दी", "संस्कृतम्", "भारत", "१२३४", "क्षत्रिय", "বাংলা", "தமிழ்"],
}

EMOJI = ["😀", "👍🏽", "👍🏿", "👩‍👩‍👧‍👦", "👨🏻‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵🇺🇸", "❤️", "✌🏼",
         "🧑‍🤝‍🧑", "😂😂😂", "🙈🙉🙊", "🔥", "👋🏾", "🤷‍♀️", "1️⃣", "©️", "🫠", "🦀"]

COMBINING = ["e\u0301", "a\u0308\u0304", "n\u0303", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d",
             "\u0301", "o\u0338", "\u0915\u094d\u0937", "i\u0307", "\u05e9\u05c1", "x\u20dd"]

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u2063",
              "\u200e", "\u200f", "\u202e"]

SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n ", "\u00a0",
          "\u3000", "\u2003", "\u2028", "\u0085", "\x0b", "\x0c", "\x1c", "\x1f", " \t \n"]

CODE = [
    "int main(int argc, char **argv) {\n    return 0;\n}\n",
    "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n\treturn -x\n",
    "for (let i = 0; i < n; i++) { sum += a[i]; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))",
    "x = {'key': [1, 2.5, -3e10], \"s\": None}  # comment",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "    if (!ptr) { fprintf(stderr, \"oom\\n\"); exit(1); }\r\n",
    "<div class=\"a\"><p>Hello &amp; welcome</p></div>",
    "$ git commit -m 'fix: handle \\r\\n' && make -j2",
]

URLS = ["https://example.com/path/to/page?query=1&x=%20y#frag", "http://localhost:8080/",
        "ftp://files.example.org/pub/file.tar.gz", "https://ja.wikipedia.org/wiki/東京",
        "mailto:someone@example.com", "www.example.co.uk/a_b-c~d", "https://huggingface.co/gpt2"]

SPECIAL = ["<|endoftext|>", " <|endoftext|>", "<|endoftext|> ", "<|endoftext|><|endoftext|>",
           "<|endoftext|", "|endoftext|>", "<|ENDOFTEXT|>", "<|endoftext|>\n\n"]


def _english(r):
    words = [r.choice(ENGLISH) for _ in range(r.randint(1, 25))]
    if r.random() < 0.5:
        words[0] = words[0].capitalize()
    s = " ".join(words)
    return s + r.choice([".", "!", "?", ",", "", ";", ":"])


def _random_code_point(r):
    while True:
        c = r.choice([r.randint(1, 0x7FF), r.randint(1, 0xFFFF), r.randint(1, 0x10FFFF)])
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def _long_word(r):
    n = r.randint(1000, 5000)
    kind = r.randrange(7)
    if kind == 0:
        return "a" * n
    if kind == 1:
        return "".join(r.choice(string.ascii_letters) for _ in range(n))
    if kind == 2:
        return "".join(r.choice(string.digits) for _ in range(n))
    if kind == 3:
        return " " * n + "x"
    if kind == 4:
        return "😀" * (n // 4)
    if kind == 5:
        return "".join(r.choice("абвгдежзиклмнопрстуфхцчшщ") for _ in range(n))
    return "!" * n


def _one(r, cat):
    if cat == "english":
        return _english(r)
    if cat == "contractions":
        return " ".join(r.choice(CONTRACTIONS + ENGLISH[:50]) for _ in range(r.randint(1, 10)))
    if cat == "digits":
        parts = []
        for _ in range(r.randint(1, 6)):
            k = r.randrange(4)
            if k == 0:
                parts.append(str(r.randint(0, 10 ** r.randint(1, 20))))
            elif k == 1:
                parts.append(f"{r.uniform(-1e6, 1e6):.{r.randint(0, 6)}f}")
            elif k == 2:
                parts.append(r.choice(PUNCT_RUNS) * r.randint(1, 3))
            else:
                parts.append("".join(r.choice(string.digits + string.punctuation) for _ in range(r.randint(1, 30))))
        return r.choice(["", " "]).join(parts)
    if cat == "whitespace":
        core = _english(r) if r.random() < 0.7 else r.choice(CODE)
        words = core.split(" ")
        out = r.choice(SPACES) * r.randint(0, 3)
        for w in words:
            out += w + (r.choice(SPACES) * r.randint(1, 3) if r.random() < 0.4 else " ")
        return out + r.choice(SPACES) * r.randint(0, 4)
    if cat == "crlf":
        return "\r\n".join(_english(r) for _ in range(r.randint(1, 4))) + r.choice(["", "\r\n", "\r\n\r\n", "\r"])
    if cat in SCRIPTS:
        words = [r.choice(SCRIPTS[cat]) for _ in range(r.randint(1, 8))]
        return r.choice([" ", "", ", "]).join(words) + r.choice(["", ".", "。", "؟", "।"])
    if cat == "emoji":
        return "".join(r.choice(EMOJI) + r.choice(["", " ", "", "\u200d"]) for _ in range(r.randint(1, 8)))
    if cat == "combining":
        return "".join(r.choice(COMBINING) + r.choice(["", " ", "a"]) for _ in range(r.randint(1, 8)))
    if cat == "zero_width":
        return "".join(r.choice(ENGLISH[:40] + ZERO_WIDTH + [" "]) for _ in range(r.randint(1, 12)))
    if cat == "code":
        return r.choice(CODE)
    if cat == "url":
        return r.choice(["", "see ", "(", "<"]) + r.choice(URLS) + r.choice(["", ".", ")", ">", " now"])
    if cat == "special":
        return "".join(r.choice(SPECIAL + [_english(r)]) for _ in range(r.randint(1, 4)))
    if cat == "long_word":
        return _long_word(r)
    if cat == "printable":
        return "".join(r.choice(string.printable) for _ in range(r.randint(1, 80)))
    if cat == "code_points":
        return "".join(_random_code_point(r) for _ in range(r.randint(1, 40)))
    raise ValueError(cat)


CATEGORIES = ["english", "contractions", "digits", "whitespace", "crlf", *SCRIPTS, "emoji",
              "combining", "zero_width", "code", "url", "special", "long_word", "printable",
              "code_points", "mixed"]


def corpus_items(n=12000, seed=1234):
    """Returns n (category, string) pairs, cycling through CATEGORIES."""
    r = random.Random(seed)
    out = []
    base = [c for c in CATEGORIES if c not in ("mixed", "long_word")]
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        if cat == "long_word" and i % (7 * len(CATEGORIES)) != CATEGORIES.index("long_word"):
            cat = "code_points"  # keep the few-thousand-character words to about 1 in 7
        if cat == "mixed":
            s = "".join(_one(r, r.choice(base)) + r.choice(["", " ", "\n"]) for _ in range(r.randint(2, 6)))
        else:
            s = _one(r, cat)
        out.append((cat, s))
    return out


def corpus(n=12000, seed=1234):
    """Returns the n strings of corpus_items(n, seed)."""
    return [s for _, s in corpus_items(n, seed)]


if __name__ == "__main__":
    import sys
    c = corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 12000)
    print(len(c), "strings,", sum(len(s) for s in c), "characters,", sum(len(s.encode()) for s in c), "bytes")
