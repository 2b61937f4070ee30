"""What a user asks figurine for: one Request, checked the same way from every source.

    from figurine.request import Request
    req = Request(photos=["me.jpg"], name="Ada Lovelace", tagline="Analytical Engine Pilot",
                  accessories=["punch cards"], output="ada.png")
    req.shareable()          # the fields a shared PNG may carry: text and choices, no paths
    Request.from_stored(record["request"], output="again.png")   # a re-run, validated

A Request comes from the command line, the Python API, the web UI or a batch row: those are the
user's own words and may name files (photos, an own accessory picture, a pose reference,
outputs). It may also be rebuilt from a stored record (a run directory's run.json, a PNG shared
by someone else); such a record is untrusted, so `from_stored` accepts only text and choices,
each checked for type and range, and never a path: inputs come from the command line, models
from the user's own config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from figurine.errors import InputError

# The fields a stored record may set (text, names and numbers; never a path).
STORED_FIELDS = ("name", "tagline", "outfit", "accessories", "pose", "face_index", "seed", "candidates",
                 "template", "size", "edition")
MAX_TEXT = 300          # any one text field, before the packaging's own tighter limits
MAX_ACCESSORY_TEXTS = 16
MAX_CANDIDATES = 16
MAX_SEED = 2**32 - 1
MAX_EDITION = 9999
MAX_PHOTOS = 8


@dataclass(frozen=True)
class Photo:
    """A photo already in memory: a batch worker gets the bytes, never writes them anywhere."""

    name: str  # for messages only ("row 3 photo 1")
    data: bytes = field(repr=False)


@dataclass
class Request:
    """One figure. None means "the config's value" (pose, seed, candidates, template, size...)."""

    name: str
    photos: list = field(default_factory=list)  # paths (Path/str) or Photo (bytes in memory)
    output: Path | None = None        # the package picture; None: NAME.png (make) / the run's own name
    tagline: str = ""
    outfit: str = ""
    accessories: list[str] = field(default_factory=list)
    accessory_images: list[Path] = field(default_factory=list)
    pose: str | None = None           # preset name
    pose_from: Path | None = None     # reference photo to take the pose from
    face_index: int | None = None
    seed: int | None = None           # -1: a new random seed
    candidates: int | None = None
    template: str | None = None
    size: str | None = None
    pdf: Path | None = None
    run_dir: Path | None = None       # None: OUTPUT.run next to the output
    force: bool = False
    store_embedding: bool = False
    edition: int | None = None

    def __post_init__(self):
        photos = [self.photos] if isinstance(self.photos, (str, Path, Photo)) else self.photos
        self.photos = [p if isinstance(p, Photo) else Path(p) for p in photos]
        self.accessory_images = [Path(p) for p in self.accessory_images]
        for key in ("output", "pose_from", "pdf", "run_dir"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Path):
                setattr(self, key, Path(value))
        self.accessories = list(self.accessories)
        check(self)

    @classmethod
    def from_stored(cls, stored: object, **given) -> "Request":
        """A request rebuilt from an untrusted record, then `given` (the command line) on top."""
        if not isinstance(stored, dict):
            raise InputError("the stored request is not a table of settings")
        values = {k: stored[k] for k in STORED_FIELDS if stored.get(k) is not None}
        values.update({k: v for k, v in given.items() if v is not None})
        values.setdefault("name", "")
        try:
            return cls(**values)
        except TypeError as e:  # a field of the wrong kind in the record
            raise InputError(f"the stored request is not valid ({e})") from None

    def with_changes(self, **changes) -> "Request":
        """A copy with some fields changed (None leaves a field as it is), checked again."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InputError(f"unknown request field(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def shareable(self) -> dict:
        """The request as a shared file may show it: text and choices only."""
        d = asdict(self)
        out = {k: d[k] for k in STORED_FIELDS}
        out["photos"] = len(self.photos)
        out["own_accessory_images"] = len(self.accessory_images)
        out["pose_from_photo"] = self.pose_from is not None
        return out


def _text(what: str, value: object, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise InputError(f"{what} is {len(value)} characters long; the limit is {limit}")


def _int(what: str, value: object, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be a whole number, got {value!r}"[:200])
    if not low <= value <= high:
        raise InputError(f"{what} must be between {low} and {high}, got {value}")


def _name_choice(what: str, value: object) -> None:
    """A preset/template/size name: short plain text, never a path."""
    if value is None:
        return
    _text(what, value, 64)
    if not value or "/" in value or "\\" in value or value.startswith(".") or "\x00" in value:
        raise InputError(f"{what} '{value[:64]}' is not a name")


def check(req: Request) -> None:
    """Types and ranges of every field (names of presets and templates are checked by the
    pipeline against what exists; text against the packaging font)."""
    _text("name", req.name)
    for key in ("tagline", "outfit"):
        _text(key, getattr(req, key))
    if not isinstance(req.accessories, list) or len(req.accessories) > MAX_ACCESSORY_TEXTS:
        raise InputError(f"accessories must be a list of at most {MAX_ACCESSORY_TEXTS} texts")
    for text in req.accessories:
        _text("an accessory", text, 200)
    for key in ("pose", "template", "size"):
        _name_choice(key, getattr(req, key))
    _int("face index", req.face_index, -1, 64)
    _int("seed", req.seed, -1, MAX_SEED)
    _int("candidates", req.candidates, 1, MAX_CANDIDATES)
    _int("edition", req.edition, 0, MAX_EDITION)
    if len(req.photos) > MAX_PHOTOS:
        raise InputError(f"{len(req.photos)} photos given; at most {MAX_PHOTOS}")
    for key in ("force", "store_embedding"):
        if not isinstance(getattr(req, key), bool):
            raise InputError(f"{key} must be true or false")
