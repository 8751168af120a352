"""Parsing GET /allocation_candidates and GET /resource_providers query strings
(cloudd/services/placement/query.py): groups, request-wide parameters, and
Placement's exact error texts and codes at each microversion."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from cloudd.services.placement.query import (
    member_of_params,
    parse_candidate_query,
    parse_resources,
    traits_params,
)
from cloudd.web.errors import ApiError

A1 = "8d830468-6395-46b0-b56a-f934a1d60bbe"
A2 = "ed6ea55d-01ce-4e11-ba97-13a4e5540b3e"


def q(*pairs: tuple[str, str]) -> MultiDict:
    return MultiDict(pairs)


def parse(version, *pairs):
    return parse_candidate_query(q(*pairs), version)


def fails(version, *pairs) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(version, *pairs)
    assert info.value.status == 400
    return info.value


def test_unsuffixed_group_and_defaults():
    groups, params = parse((1, 10), ("resources", "VCPU:1,MEMORY_MB:1024"))
    assert list(groups) == [""]
    g = groups[""]
    assert g.resources == {"VCPU": 1, "MEMORY_MB": 1024}
    assert g.use_same_provider is False
    assert params.limit is None and params.group_policy is None


def test_granular_groups_keep_query_order():
    groups, params = parse((1, 25), ("resources2", "VCPU:1"), ("resources", "DISK_GB:5"),
                           ("resources1", "MEMORY_MB:8"), ("group_policy", "isolate"))
    assert list(groups) == ["2", "", "1"]
    assert groups["2"].use_same_provider and not groups[""].use_same_provider
    assert params.group_policy == "isolate"


def test_long_suffixes_from_1_33():
    groups, _ = parse((1, 33), ("resources_COMPUTE", "VCPU:1"),
                      ("required_COMPUTE", "!HW_CPU_X86_SSE"),
                      ("resources-port-bw", "NET_BW_EGR_KILOBIT_PER_SEC:10"),
                      ("group_policy", "none"))
    assert groups["_COMPUTE"].forbidden_traits == {"HW_CPU_X86_SSE"}
    assert groups["-port-bw"].resources == {"NET_BW_EGR_KILOBIT_PER_SEC": 10}
    err = fails((1, 32), ("resources_COMPUTE", "VCPU:1"))
    assert "'resources_COMPUTE' does not match any of the regexes" in err.message


@pytest.mark.parametrize("version, pairs, text", [
    ((1, 10), [], "'resources' is a required property"),
    ((1, 10), [("resources", "")], "Got: empty string."),
    ((1, 15), [("resources", "VCPU:1"), ("limit", "5")], "'limit' was unexpected"),
    ((1, 16), [("resources", "VCPU:1"), ("limit", "0")], "Failed validating 'pattern'"),
    ((1, 16), [("resources", "VCPU:1"), ("required", "X")], "'required' was unexpected"),
    ((1, 24), [("resources", "VCPU:1"), ("resources1", "VCPU:1")],
     "'resources1' was unexpected"),
    ((1, 25), [("resources01", "VCPU:1")],
     "'resources01' does not match any of the regexes"),
    ((1, 25), [("resources", "VCPU:1"), ("group_policy", "bogus")],
     "'bogus' is not one of ['none', 'isolate']"),
    ((1, 33), [("resources1@", "VCPU:1")], "^member_of([a-zA-Z0-9_-]{1,64})?$"),
    ((1, 34), [("resources", "VCPU:1"), ("root_required", "X")],
     "'root_required' does not match any of the regexes"),
    ((1, 30), [("resources", "VCPU:1"), ("in_tree", A1)], "Invalid query string parameters"),
])
def test_schema_errors(version, pairs, text):
    err = fails(version, *pairs)
    assert err.message.startswith("Invalid query string parameters") or "Got:" in text
    assert text in err.message


@pytest.mark.parametrize("value, text", [
    ("VCPU", "Got: VCPU."),
    ("VCPU:fred", "Requested resource VCPU expected positive integer amount. Got: fred."),
    ("VCPU:-2", "Requested resource VCPU requires amount >= 1. Got: -2."),
    ("DISK_GB:500,", "Got: ."),
])
def test_bad_resources(value, text):
    with pytest.raises(ApiError) as info:
        parse_resources(value)
    assert text in info.value.message
    assert "Badly formed" in info.value.message or "Requested resource" in info.value.message


@pytest.mark.parametrize("version, value, text", [
    ((1, 17), "", "value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC."),
    ((1, 22), "", "value of the form: HW_CPU_X86_VMX,!CUSTOM_MAGIC."),
    ((1, 17), ",,", "value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC."),
    ((1, 17), "!CUSTOM_MAGIC", "value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: !"),
    ((1, 38), "in:CUSTOM_FOO,HW_CPU_X86_MMX",
     "The format 'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since microversion 1.39."),
    ((1, 39), "in:A,!B", "does not support forbidden traits"),
    ((1, 39), "in:A,", "Got an empty trait in: in:A,"),
])
def test_bad_traits(version, value, text):
    err = fails(version, ("resources", "VCPU:1"), ("required", value))
    assert text in err.message
    assert err.message.startswith("Invalid query string parameters: ")


def test_required_repeats_last_wins_before_1_39_and_and_from_1_39():
    old = q(("required", "CUSTOM_FOO"), ("required", "HW_CPU_X86_MMX"))
    assert traits_params(old, "", (1, 38)) == ([{"HW_CPU_X86_MMX"}], set())
    new = q(("required", "in:A,B"), ("required", "C,!D"))
    assert traits_params(new, "", (1, 39)) == ([{"A", "B"}, {"C"}], {"D"})
    # Placement strips every leading "!".
    assert traits_params(q(("required", "!!X")), "", (1, 22)) == ([], {"X"})


def test_member_of_forms():
    assert member_of_params(q(("member_of", f"in:{A1},{A2}")), "", (1, 24)) == (
        [{A1, A2}], set())
    assert member_of_params(q(("member_of", f"!in:{A1},{A2}"), ("member_of", A1)), "",
                            (1, 32)) == ([{A1}], {A1, A2})
    for version, pairs, text in [
        ((1, 23), [A1, A2], "Multiple member_of parameters are not supported"),
        ((1, 31), [f"!{A1}"], "Forbidden member_of parameters are not supported"),
        ((1, 24), [f"{A1},{A2}"], "must be prefixed with the 'in:' or '!in:' keyword"),
        ((1, 24), ["in:"], "Expected 'member_of' parameter to contain valid UUID(s)."),
        ((1, 32), [f"in:{A1},!{A2}"], "to contain valid UUID(s)."),
    ]:
        with pytest.raises(ApiError) as info:
            member_of_params(q(*[("member_of", v) for v in pairs]), "", version)
        assert text in info.value.message


def test_group_rules_before_1_36():
    assert "orphaned traits keys: required, required1" in fails(
        (1, 25), ("required", "FOO"), ("required1", "BAR")).message
    assert "orphaned member_of keys: member_of, member_of3" in fails(
        (1, 25), ("member_of", A1), ("member_of3", A2)).message
    assert fails((1, 31), ("resources", "VCPU:1"), ("in_tree1", A1)).message == \
        "All request groups must specify resources."
    assert "At least one request group" in fails((1, 25), ("group_policy", "isolate")).message
    err = fails((1, 25), ("resources1", "VCPU:1"), ("resources2", "VCPU:1"))
    assert err.message == ('The "group_policy" parameter is required when specifying '
                           'more than one "resources{N}" parameter.')
    # One numbered group needs no policy.
    parse((1, 25), ("resources", "VCPU:1"), ("resources1", "MEMORY_MB:1"))


def test_conflicting_traits():
    err = fails((1, 22), ("resources", "VCPU:1"), ("required", "A,!A"))
    assert err.message == ("Conflicting required and forbidden traits found in the "
                           "following traits keys: required: (A)")
    # any-of with one allowed member is fine
    parse((1, 39), ("resources", "VCPU:1"), ("required", "in:A,B"), ("required", "!A"))


def test_same_subtree_rules():
    v = (1, 36)
    err = fails(v, ("resources1", "VCPU:1"), ("required2", "X"), ("group_policy", "none"))
    assert "Resourceless suffixed group request should be specified in `same_subtree`" \
        in err.message
    assert err.code == "placement.query.bad_value"
    err = fails(v, ("member_of1", A1), ("group_policy", "none"))
    assert err.message == "There must be at least one resources or resources[$S] parameter."
    assert err.code == "placement.query.missing_value"
    err = fails(v, ("resources_A", "VCPU:1"), ("resources_B", "FPGA:1"),
                ("same_subtree", "A,_B"), ("group_policy", "none"))
    assert "Real suffixes should be specified in `same_subtree`: ['A'] not found" \
        in err.message
    err = fails(v, ("resources_A", "VCPU:1"), ("same_subtree", "_A,,_B"))
    assert "Empty string (unsuffixed group) can not be specified in `same_subtree`" \
        in err.message
    groups, params = parse(v, ("resources_A", "VCPU:1"), ("required_N", "X"),
                           ("same_subtree", "_A,_N"), ("same_subtree", "_A, _N ,_A"),
                           ("group_policy", "none"))
    assert params.same_subtrees == [{"_A", "_N"}, {"_A", "_N"}]
    assert groups["_N"].resources == {}


def test_root_required():
    v = (1, 35)
    _, params = parse(v, ("resources", "VCPU:1"), ("root_required", "A,!B"))
    assert (params.root_required, params.root_forbidden) == ({"A"}, {"B"})
    err = fails(v, ("resources", "VCPU:1"), ("root_required", "A,B,!A"))
    assert err.message == ("Conflicting required and forbidden traits found in "
                           "root_required: A")
    assert err.code == "placement.query.bad_value"
    err = fails(v, ("resources", "VCPU:1"), ("root_required", "A"), ("root_required", "!B"))
    assert err.message == "Query parameter 'root_required' may be specified only once."
    assert err.code == "placement.query.duplicate_key"
    assert "only supported since microversion 1.39" in fails(
        (1, 39), ("resources", "VCPU:1"), ("root_required", "in:A,B")).message


def test_limit_and_group_policy_take_the_first():
    _, params = parse((1, 25), ("resources", "VCPU:1"), ("limit", "10"), ("limit", "1"),
                      ("group_policy", "isolate"), ("group_policy", "none"))
    assert params.limit == 10 and params.group_policy == "isolate"


def test_in_tree():
    groups, _ = parse((1, 31), ("resources", "VCPU:1"), ("in_tree", A1))
    assert groups[""].in_tree == A1
    assert "Expected 'in_tree' parameter to be a format of uuid" in fails(
        (1, 31), ("resources", "VCPU:1"), ("in_tree", "life-is-beautiful")).message
