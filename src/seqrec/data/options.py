"""The reading options of a raw log as `DataConfig` spells them: `columns` and `sep`.

Only parsing and checking live here (no file is opened), so that `seqrec.config` can validate
its fields without importing the reader. The reader (`seqrec.data.lastfm`) applies them.

`columns`: "" (the default) lets the reader recognise LastFM-1K or a three-field
`user, item, time` log by itself. Otherwise it is `ROLE=COLUMN` for each of the three roles
`user`, `item` and `time`, joined by commas, in any order; a COLUMN is a 0-based field position
(`user=0,item=1,time=3`, MovieLens' `u.data`) or a name from the file's header line
(`user=userId,item=movieId,time=timestamp`, MovieLens' `ratings.csv`). Positions and names may
be mixed; a name needs a header. Names cannot hold `,` or `=`.

`sep`: "" (the default) detects the separator from the first lines; otherwise one of the names
in `SEPARATORS` or a single character other than a quote or a line end.
"""

from __future__ import annotations

ROLES = ("user", "item", "time")
# Names for separators that are awkward to type in `--set sep=...` (a tab above all).
SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
              "space": " "}
_EXAMPLES = "e.g. user=0,item=1,time=3 or user=userId,item=movieId,time=timestamp"


def parse_columns(text: str) -> dict[str, int | str]:
    """`"user=0,item=1,time=3"` -> `{"user": 0, "item": 1, "time": 3}`; "" -> `{}` (automatic).

    A COLUMN made of digits is a position (int), anything else a header name (str). Raises
    ValueError naming the spec and what is wrong with it.
    """
    text = text.strip()
    if not text:
        return {}

    def bad(why: str) -> ValueError:
        return ValueError(f"columns={text!r}: {why}")

    out: dict[str, int | str] = {}
    for part in text.split(","):
        role, eq, column = (s.strip() for s in part.partition("="))
        if not eq:
            raise bad(f"{part.strip()!r} is not ROLE=COLUMN ({_EXAMPLES})")
        if "=" in column:
            raise bad(f"{part.strip()!r} holds two '='; separate the parts with commas "
                      f"({_EXAMPLES})")
        if role not in ROLES:
            raise bad(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
        if role in out:
            raise bad(f"{role} is given twice")
        if not column:
            raise bad(f"{role} has an empty column; give a position (0, 1, ...) or a "
                      f"header name")
        if column.lstrip("-").isdigit():
            position = int(column)
            if position < 0:
                raise bad(f"position {position} of {role} is negative; positions count "
                          f"from 0")
            out[role] = position
        else:
            out[role] = column
    missing = [r for r in ROLES if r not in out]
    if missing:
        raise bad(f"missing {' and '.join(missing)}; give all of {', '.join(ROLES)} "
                  f"({_EXAMPLES})")
    values = list(out.values())
    for v in values:
        if values.count(v) > 1:
            raise bad(f"column {v!r} is given twice; user, item and time must be three "
                      f"different columns")
    return out


def parse_sep(text: str) -> str:
    """The separator character for `sep` (a name from `SEPARATORS` or one character); "" is
    automatic. Raises ValueError saying what is accepted."""
    if text == "":
        return ""
    if text.lower() in SEPARATORS:
        return SEPARATORS[text.lower()]
    if len(text) == 1 and text not in "\"'\r\n":
        return text
    raise ValueError(f"sep={text!r}: give one character other than a quote or a line end, or "
                     f"one of {', '.join(k for k in SEPARATORS if k != chr(92) + 't')} "
                     f"(empty: detect it)")
