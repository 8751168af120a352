"""The compiled check in front of jsonschema (cloudd/web/schema_fast.py) never
accepts a body jsonschema rejects, accepts the valid ones (or it saves
nothing), and leaves Nova's error wording to jsonschema."""

from __future__ import annotations

import jsonschema
import pytest

from cloudd.services.compute import server_schemas as ss
from cloudd.web import schema_fast
from cloudd.web.errors import ApiError

UUID = "8f2a3b1c-1111-4222-8333-444455556666"
MICROVERSIONS = [(2, 1), (2, 19), (2, 32), (2, 37), (2, 42), (2, 52), (2, 57), (2, 63),
                 (2, 67), (2, 74), (2, 90), (2, 94), (2, 100)]
VALUES = ["", "x", "x" * 300, " lead", "abc\n", "a,b", "ok-tag", "MANUAL", "auto", "none",
          UUID, "not-a-uuid", "10.0.0.1", "fe80::1", "10.0.0.300", "aGVsbG8=", "%%%",
          None, 0, 1, -1, 1.0, 1.5, True, False, [], ["a"], ["a", "a"], [UUID], {},
          {"k": "v"}, {"k": 1}, [{"uuid": UUID}], [{"uuid": UUID, "tag": "a/b"}],
          [{"uuid": UUID, "tag": "t"}], [{"port": None}], [{"port": UUID}],
          [{"uuid": UUID, "fixed_ip": "10.0.0.1"}], [{"fixed_ip": "bad"}],
          [{"uuid": "x"}], [{"source_type": "image", "uuid": UUID, "boot_index": 0}],
          [{"boot_index": "0", "tag": "a\n"}], ["t1", "t2"], ["a/b"]]


def valid(schema, body) -> bool:
    checker = ss.FORMATS.get()
    return jsonschema.Draft4Validator(schema, format_checker=checker).is_valid(body)


def bodies(schema: dict):
    """A valid create, then each server field and scheduler hint set to each of
    VALUES in turn (and dropped)."""
    base = {"server": {"name": "vm", "imageRef": UUID, "flavorRef": "1"}}
    if "networks" in schema["properties"]["server"].get("required", []):
        base["server"]["networks"] = "none"
    yield base
    for field in schema["properties"]["server"]["properties"]:
        for value in VALUES:
            yield {"server": {**base["server"], field: value}}
        yield {"server": {k: v for k, v in base["server"].items() if k != field}}
    for field in schema["properties"]["os:scheduler_hints"]["properties"]:
        for value in VALUES:
            yield {**base, "os:scheduler_hints": {field: value}}
    for value in VALUES:
        yield {**base, "extra": value}
        yield value


@pytest.mark.parametrize("mv", MICROVERSIONS, ids=lambda mv: f"2.{mv[1]}")
def test_server_create_fast_check_agrees_with_jsonschema(mv):
    schema = ss.create_schema(mv)
    fast = schema_fast.compile_check(schema, ss.FORMATS.get())
    assert fast is not None, "server create lost its compiled check"
    looser, stricter, seen_valid = [], [], 0
    for body in bodies(schema):
        expected = valid(schema, body)
        seen_valid += expected
        if fast(body) and not expected:
            looser.append(body)
        elif expected and not fast(body):
            stricter.append(body)
    assert looser == []
    assert seen_valid > 50
    # Stricter only where fastjsonschema reads a pattern's "$" as the very end
    # (the body then goes to jsonschema, which accepts it).
    assert all("\\n" in repr(b) for b in stricter), stricter


def test_a_body_only_jsonschema_accepts_is_still_accepted():
    """"$" before a trailing newline: jsonschema (as Nova) accepts the host,
    the compiled check does not, and validate() asks jsonschema."""
    schema = ss.create_schema((2, 74))
    body = {"server": {"name": "vm", "imageRef": UUID, "flavorRef": "1",
                       "networks": "none", "host": "abc\n"}}
    assert schema_fast.compile_check(schema, ss.FORMATS.get())(body) is False
    assert valid(schema, body)
    ss.validate(body, schema)
    ss.validate(body, schema)           # compiled on the second use
    assert ss._validator(schema)[1] is not None


def test_a_schema_built_per_request_is_not_compiled():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    ss.validate({"a": "x"}, schema)
    assert ss._validator(dict(schema))[1] is None


def test_errors_keep_novas_wording():
    schema = ss.create_schema((2, 37))
    with pytest.raises(ApiError) as err:
        ss.validate({"server": {"name": "x" * 256, "imageRef": UUID, "flavorRef": "1",
                                "networks": "none"}}, schema)
    assert err.value.status == 400
    assert str(err.value).startswith("Invalid input for field/attribute name. Value: xxx")
    assert "is too long" in str(err.value)


@pytest.mark.parametrize("schema", [
    # a stricter branch under oneOf could leave exactly one match
    {"oneOf": [{"type": "string", "pattern": "^a$"}, {"type": "string"}]},
    {"not": {"type": "array", "uniqueItems": True}},
    # fastjsonschema compares 1 and true as equal inside objects
    {"enum": [{"a": 1}]},
], ids=["oneOf-pattern", "not-uniqueItems", "object-enum"])
def test_schemas_it_could_be_looser_on_are_left_to_jsonschema(schema):
    assert schema_fast.compile_check(schema, ss.FORMATS.get()) is None


def test_formats_are_jsonschemas():
    """Formats jsonschema checks run its checker; those it does not know pass,
    as in jsonschema, instead of fastjsonschema's own regexes."""
    checker = ss.FORMATS.get()
    check = schema_fast.compile_check({"type": "string", "format": "uuid"}, checker)
    assert check(UUID) and not check("nope")
    unknown = schema_fast.compile_check({"type": "string", "format": "hostname"},
                                        jsonschema.FormatChecker(formats=()))
    assert unknown("not a hostname!")
