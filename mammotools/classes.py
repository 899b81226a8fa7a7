"""The class table: region names, aliases, label values, colours, superposition rank, smoothing.

The default is the paper's table (``default_classes.json``, method.md): 14 regions, Tumor on
top (rank 1), Background at the bottom (rank 14, label 0). A user passes another scheme as a
JSON list of ``{"name", "label", "color": [r, g, b], "rank", "smooth", "aliases"?}`` objects.

Names are matched ignoring case and runs of whitespace/underscores, through the aliases too
(the paper's misspellings "Auxiliary lymph nodes" and "Submammory tissue" are aliases). A
QuPath derived class such as ``"Tumor: Positive"`` matches itself first, then its base class.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from mammotools.defaults import IGNORE_LABEL
from mammotools.errors import InputError, MissingFileError

DEFAULT_TABLE_FILE = "default_classes.json"


@dataclass(frozen=True)
class RegionClass:
    """One region of the class table."""

    name: str
    label: int  # value in the label map, 0..255
    color: tuple[int, int, int]
    rank: int  # 1 = on top: a higher-ranked region overwrites lower ones where they overlap
    smooth: bool  # Gaussian-smoothed before merging
    aliases: tuple[str, ...] = field(default=())

    @property
    def slug(self) -> str:
        """File-name form of the name: ``"Pectoral muscle"`` -> ``"pectoral_muscle"``."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_") or f"label_{self.label}"

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["color"] = list(self.color)
        d["aliases"] = list(self.aliases)
        return d


def normalize_name(name: str) -> str:
    """Key used for matching: case-folded, whitespace and underscores collapsed."""
    return " ".join(re.split(r"[\s_]+", name.strip())).casefold()


class ClassTable:
    """An ordered set of :class:`RegionClass` with lookup by name or alias."""

    def __init__(self, classes: list[RegionClass], source: str = "<memory>") -> None:
        self.classes = sorted(classes, key=lambda c: c.rank)
        self.source = source
        self._validate()
        self._lookup: dict[str, RegionClass] = {}
        for c in self.classes:
            for n in (c.name, *c.aliases):
                key = normalize_name(n)
                other = self._lookup.get(key)
                if other is not None and other is not c:
                    raise InputError(
                        f"{source}: the name {n!r} is used by both {other.name!r} and {c.name!r}; "
                        "each name and alias must belong to one class"
                    )
                self._lookup[key] = c

    def _validate(self) -> None:
        src = self.source
        if not self.classes:
            raise InputError(f"{src}: the class table is empty; give at least one class")
        for attr in ("name", "label", "rank"):
            seen: dict[object, str] = {}
            for c in self.classes:
                value = getattr(c, attr) if attr != "name" else normalize_name(c.name)
                if value in seen:
                    raise InputError(
                        f"{src}: classes {seen[value]!r} and {c.name!r} share the {attr} "
                        f"{getattr(c, attr)!r}; each class needs its own {attr}"
                    )
                seen[value] = c.name
        slugs = [c.slug for c in self.classes]
        if len(set(slugs)) != len(slugs):
            raise InputError(f"{src}: two class names give the same file name ({slugs}); rename one")
        if len({c.label for c in self.classes}) != len(self.classes):
            raise InputError(f"{src}: label values must be distinct")

    def __iter__(self) -> Iterator[RegionClass]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        """Class names, highest rank first."""
        return [c.name for c in self.classes]

    @property
    def bottom(self) -> RegionClass:
        """The lowest-ranked class: it fills every pixel no region covers (Background)."""
        return self.classes[-1]

    def find(self, name: str) -> RegionClass | None:
        """The class ``name`` refers to (aliases, case, derived ``"Base: Sub"`` names), or None."""
        found = self._lookup.get(normalize_name(name))
        if found is None and ":" in name:
            found = self._lookup.get(normalize_name(name.split(":", 1)[0]))
        return found

    def by_label(self, label: int) -> RegionClass:
        """The class with label value ``label``."""
        for c in self.classes:
            if c.label == label:
                return c
        raise KeyError(label)

    def palette(self) -> bytes:
        """A 768-byte RGB palette: entry ``label`` is that class's colour, others black."""
        pal = bytearray(768)
        for c in self.classes:
            pal[3 * c.label : 3 * c.label + 3] = bytes(c.color)
        return bytes(pal)

    def to_json(self) -> str:
        """The table as the JSON text users pass to ``--classes`` (and exports record)."""
        rows = [json.dumps(c.to_json()) for c in self.classes]
        return "[\n  " + ",\n  ".join(rows) + "\n]\n"


def default_class_table() -> ClassTable:
    """The paper's 14-region table (method.md, Table 7 of the paper)."""
    text = resources.files("mammotools").joinpath(DEFAULT_TABLE_FILE).read_text("utf-8")
    return parse_class_table(json.loads(text), source="default class table")


def load_class_table(path: str | Path | None) -> ClassTable:
    """Read a user's class table JSON file; ``None`` gives the default table."""
    if path is None:
        return default_class_table()
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: class table file not found; give a JSON file to --classes")
    try:
        data = json.loads(path.read_text("utf-8"))
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply; fix the file or omit --classes") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); fix the file or omit --classes") from None
    return parse_class_table(data, source=str(path))


def parse_class_table(data: object, source: str) -> ClassTable:
    """Build a table from parsed JSON: a list of class objects (or ``{"classes": [...]}``)."""
    if isinstance(data, dict) and "classes" in data:
        data = data["classes"]
    if not isinstance(data, list):
        raise InputError(f"{source}: expected a JSON list of class objects, got {type(data).__name__}")
    classes = [_parse_class(item, i, source) for i, item in enumerate(data)]
    return ClassTable(classes, source=source)


def _parse_class(item: object, index: int, source: str) -> RegionClass:
    where = f"{source}: class #{index + 1}"
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with keys name, label, color, rank, smooth")
    missing = [k for k in ("name", "label", "color", "rank", "smooth") if k not in item]
    if missing:
        raise InputError(f"{where} ({item.get('name', '?')!r}): missing key(s) {', '.join(missing)}")
    unknown = set(item) - {"name", "label", "color", "rank", "smooth", "aliases"}
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name, label, color, rank, smooth = (item[k] for k in ("name", "label", "color", "rank", "smooth"))
    aliases = item.get("aliases", [])
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: name must be a non-empty string")
    where = f"{source}: class {name!r}"
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < IGNORE_LABEL:
        raise InputError(
            f"{where}: label must be an integer 0..{IGNORE_LABEL - 1} (the label map is uint8; {IGNORE_LABEL} marks "
            "pixels without a class, such as crop padding)"
        )
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise InputError(f"{where}: rank must be an integer >= 1 (1 = on top)")
    if not isinstance(color, list) or len(color) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in color):
        raise InputError(f"{where}: color must be [r, g, b] with integers 0..255")
    if not isinstance(smooth, bool):
        raise InputError(f"{where}: smooth must be true or false")
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InputError(f"{where}: aliases must be a list of strings")
    return RegionClass(name.strip(), label, (color[0], color[1], color[2]), rank, smooth, tuple(aliases))
