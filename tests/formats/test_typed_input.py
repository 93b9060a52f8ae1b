"""Every bad field of an object named, by the Struct's own types (pure)."""

import msgspec

from app.formats.typed_input import Problem, given, partial, problems


class Point(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    x_pos: int
    y_pos: int
    label: str | None = None


def test_each_bad_field_then_each_missing_one() -> None:
    assert problems({"label": 3, "xPos": "1", "z": 0}, Point) == [
        Problem("label", "Expected `str | null`, got `int`"),
        Problem("xPos", "Expected `int`, got `str`"),
        Problem("z", "Unknown field 'z'"),
        Problem("yPos", "'yPos' is required"),
    ]


def test_lax_conversion_and_skipped_fields() -> None:
    assert problems({"xPos": "1", "yPos": "2"}, Point, strict=False) == []
    assert problems({"xPos": "1"}, Point, skip=frozenset({"xPos", "yPos"})) == []
    assert problems([1], Point) == [Problem("", "An object is required")]


def test_a_partial_tells_absent_from_null() -> None:
    patch = msgspec.convert({"label": None, "xPos": 1}, partial(Point, "PointPatch"))
    assert given(patch) == {"x_pos": 1, "label": None}
    assert problems({"w": 1}, partial(Point, "PointPatch")) == [Problem("w", "Unknown field 'w'")]
