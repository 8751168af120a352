"""Query-string parsing for Placement: request groups and provider filters.

Two callers:

* GET /allocation_candidates (and the scheduler): ``parse_candidate_query``
  turns a query string into ``{suffix: RequestGroup}`` plus the request-wide
  ``RequestWideParams`` (limit, group_policy, root_required, same_subtree),
  with the checks and the exact error texts Placement has at each microversion
  (placement/lib.py and placement/util.py).
* GET /resource_providers: ``provider_filter(conn, request)`` applies the
  resources / required / member_of / in_tree filters and returns the matching
  provider uuids (or None when none of them is given).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.services.placement import microversion
from cloudd.services.placement.errors import (
    ILLEGAL_DUPLICATE_QUERYPARAM,
    QUERYPARAM_BAD_VALUE,
    QUERYPARAM_MISSING_VALUE,
    error,
)
from cloudd.services.placement.respond import is_uuid_like, validate

Version = tuple[int, int]

GROUP_PAT = r"[1-9][0-9]*"
GROUP_PAT_1_33 = r"[a-zA-Z0-9_-]{1,64}"
_PREFIXES = ("resources", "required", "member_of", "in_tree")
_KEY = re.compile(r"^({})({})?$".format("|".join(_PREFIXES), GROUP_PAT))
_KEY_1_33 = re.compile(r"^({})({})?$".format("|".join(_PREFIXES), GROUP_PAT_1_33))
# Since 1.36 a group may have no resources when same_subtree names it.
SAME_SUBTREE_VERSION = (1, 36)


@dataclass
class RequestGroup:
    """One request group: what a single provider (granular, suffixed groups)
    or one tree plus its sharing providers (the unsuffixed group) must offer.

    ``required_traits`` is a list of any-of sets, AND'ed together:
    ``[{"A", "B"}, {"C"}]`` means (A or B) and C.  ``member_of`` likewise is a
    list of any-of aggregate sets.
    """

    use_same_provider: bool = True
    resources: dict[str, int] = field(default_factory=dict)
    required_traits: list[set[str]] = field(default_factory=list)
    forbidden_traits: set[str] = field(default_factory=set)
    member_of: list[set[str]] = field(default_factory=list)
    forbidden_aggs: set[str] = field(default_factory=set)
    in_tree: str | None = None


@dataclass
class RequestWideParams:
    """The parameters of GET /allocation_candidates that apply to all groups."""

    limit: int | None = None
    group_policy: str | None = None            # None, "none" or "isolate"
    root_required: set[str] = field(default_factory=set)
    root_forbidden: set[str] = field(default_factory=set)
    same_subtrees: list[set[str]] = field(default_factory=list)


# -- single values --------------------------------------------------------------

def bad(detail: str, code: str | None = None):
    return error(400, detail, code) if code else error(400, detail)


def parse_resources(value: str) -> dict[str, int]:
    """``VCPU:2,MEMORY_MB:1024`` -> {"VCPU": 2, "MEMORY_MB": 1024}."""
    if value.strip() == "":
        raise bad("Badly formed resources parameter. Expected resources query string "
                  "parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: empty string.")
    result: dict[str, int] = {}
    for part in value.split(","):
        try:
            rc, amount_s = part.split(":")
        except ValueError:
            raise bad("Badly formed resources parameter. Expected resources query string "
                      "parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. "
                      f"Got: {part}.") from None
        try:
            amount = int(amount_s)
        except ValueError:
            raise bad(f"Requested resource {rc} expected positive integer amount. "
                      f"Got: {amount_s}.") from None
        if amount < 1:
            raise bad(f"Requested resource {rc} requires amount >= 1. Got: {amount}.")
        result[rc] = amount
    return result


def parse_traits(value: str, allow_forbidden: bool,
                 allow_any: bool) -> tuple[list[set[str]], set[str]]:
    """One ``required`` value -> (any-of sets to AND, forbidden names)."""
    if value.startswith("in:"):
        if not allow_any:
            raise bad("Invalid query string parameters: The format "
                      "'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since "
                      f"microversion 1.39. Got: {value}")
        any_traits = {s.strip() for s in value[3:].split(",")}
        if not all(any_traits):
            raise bad("Invalid query string parameters: Expected 'required' parameter "
                      "value of the form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty "
                      f"trait in: {value}")
        if any(t.startswith("!") for t in any_traits):
            raise bad("Invalid query string parameters: The format "
                      "'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' does not support forbidden "
                      f"traits. Got: {value}")
        return [any_traits], set()
    names = [s.strip() for s in value.split(",")]
    # Placement strips any number of leading "!" (a kept bug).
    forbidden = {n.lstrip("!") for n in names if n.startswith("!")}
    if not all(names) or not all(forbidden):
        form = "HW_CPU_X86_VMX,!CUSTOM_MAGIC" if allow_forbidden \
            else "HW_CPU_X86_VMX,CUSTOM_MAGIC"
        raise bad("Invalid query string parameters: Expected 'required' parameter "
                  f"value of the form: {form}. Got an empty trait in: {value}")
    if forbidden and not allow_forbidden:
        raise bad("Invalid query string parameters: Expected 'required' parameter "
                  f"value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {value}")
    return [{n} for n in names if not n.startswith("!")], forbidden


def parse_member_of(value: str) -> tuple[set[str], set[str]]:
    """One ``member_of`` value -> (any-of required aggregates, forbidden ones)."""
    if "," in value and not (value.startswith(("in:", "!in:"))):
        raise bad("Multiple values for 'member_of' must be prefixed with the 'in:' or "
                  f"'!in:' keyword using the valid microversion. Got: {value}")
    required: set[str] = set()
    forbidden: set[str] = set()
    if value.startswith("!in:"):
        forbidden = set(value[4:].split(","))
    elif value.startswith("!"):
        forbidden = {value[1:]}
    elif value.startswith("in:"):
        required = set(value[3:].split(","))
    else:
        required = {value}
    for agg in sorted(required | forbidden):
        if not is_uuid_like(agg):
            raise bad("Invalid query string parameters: Expected 'member_of' parameter "
                      f"to contain valid UUID(s). Got: {agg}")
    return required, forbidden


def parse_in_tree(value: str) -> str:
    found = value.strip()
    if not is_uuid_like(found):
        raise bad("Invalid query string parameters: Expected 'in_tree' parameter to be "
                  f"a format of uuid. Got: {value}")
    return found


# -- repeated keys ----------------------------------------------------------------

def traits_params(query: Mapping, suffix: str,
                  version: Version) -> tuple[list[set[str]], set[str]]:
    """Every ``required<suffix>`` (only the last one before 1.39)."""
    allow_forbidden = version >= (1, 22)
    allow_any = version >= (1, 39)
    values = query.getall("required" + suffix, [])
    if not allow_any:
        values = values[-1:]
    required: list[set[str]] = []
    forbidden: set[str] = set()
    for value in values:
        req, forb = parse_traits(value, allow_forbidden, allow_any)
        required += req
        forbidden |= forb
    return required, forbidden


def member_of_params(query: Mapping, suffix: str,
                     version: Version) -> tuple[list[set[str]], set[str]]:
    """Every ``member_of<suffix>``: repeated from 1.24, ``!`` from 1.32."""
    values = query.getall("member_of" + suffix, [])
    if version < (1, 24) and len(values) > 1:
        raise bad(f"Multiple member_of{suffix} parameters are not supported")
    required: list[set[str]] = []
    forbidden: set[str] = set()
    for value in values:
        req, forb = parse_member_of(value)
        if req:
            required.append(req)
        if forb:
            if version < (1, 32):
                raise bad(f"Forbidden member_of{suffix} parameters are not supported "
                          "in the specified microversion")
            forbidden |= forb
    return required, forbidden


# -- GET /allocation_candidates -----------------------------------------------------

def _group_pattern(suffix_pat: str) -> str:
    return "^%s(" + suffix_pat + ")?$"


@functools.cache
def candidates_schema(version: Version) -> dict:
    """Placement's query schema for GET /allocation_candidates at ``version``
    (one dict per microversion, so its validator is made once)."""
    props: dict = {}
    schema: dict = {"type": "object", "properties": props, "additionalProperties": False}
    if version < (1, 25):
        props["resources"] = {"type": "string"}
        schema["required"] = ["resources"]
        if version >= (1, 17):
            props["required"] = {"type": ["string"]}
        if version >= (1, 21):
            props["member_of"] = {"type": ["string"]}
    else:
        pat = _group_pattern(GROUP_PAT_1_33 if version >= (1, 33) else GROUP_PAT)
        names = ["resources", "required", "member_of"]
        if version >= (1, 31):
            names.append("in_tree")
        schema["patternProperties"] = {pat % n: {"type": "string"} for n in names}
        props["group_policy"] = {"type": "string", "enum": ["none", "isolate"]}
    if version >= (1, 16):
        props["limit"] = {"type": ["integer", "string"], "pattern": "^[1-9][0-9]*$",
                          "minimum": 1, "minLength": 1}
    if version >= (1, 35):
        props["root_required"] = {"type": ["string"]}
    if version >= (1, 36):
        props["same_subtree"] = {"type": ["string"]}
    return schema


def parse_wide_params(query: Mapping) -> RequestWideParams:
    params = RequestWideParams()
    limits = query.getall("limit", [])
    if limits:
        try:
            params.limit = int(limits[0])
        except ValueError:
            raise bad("Invalid query string parameters: 'limit' must be a positive "
                      f"integer. Got: {limits[0]}") from None
    policies = query.getall("group_policy", [])
    if policies:
        params.group_policy = policies[0]
    roots = query.getall("root_required", [])
    if roots:
        if len(roots) > 1:
            raise bad("Query parameter 'root_required' may be specified only once.",
                      ILLEGAL_DUPLICATE_QUERYPARAM)
        # No any-of ("in:") form for root_required, at any microversion.
        required, forbidden = parse_traits(roots[0], True, False)
        params.root_required = {next(iter(s)) for s in required}
        params.root_forbidden = forbidden
        conflicts = params.root_required & forbidden
        if conflicts:
            raise bad("Conflicting required and forbidden traits found in root_required: "
                      + ", ".join(sorted(conflicts)), QUERYPARAM_BAD_VALUE)
    for value in query.getall("same_subtree", []):
        suffixes = {s.strip() for s in value.split(",")}
        if "" in suffixes:
            raise bad("Empty string (unsuffixed group) can not be specified in "
                      "`same_subtree` ", QUERYPARAM_BAD_VALUE)
        params.same_subtrees.append(suffixes)
    return params


def parse_groups(query: Mapping, version: Version,
                 params: RequestWideParams) -> dict[str, RequestGroup]:
    """The request groups, keyed by suffix ('' for the unsuffixed group)."""
    pattern = _KEY_1_33 if version >= (1, 33) else _KEY
    groups: dict[str, RequestGroup] = {}
    for key, value in query.items():
        m = pattern.match(key)
        if not m:
            continue
        prefix, suffix = m.group(1), m.group(2) or ""
        group = groups.setdefault(suffix, RequestGroup(use_same_provider=bool(suffix)))
        if prefix == "resources":
            group.resources = parse_resources(value)
        elif prefix == "required":
            group.required_traits, group.forbidden_traits = traits_params(
                query, suffix, version)
        elif prefix == "member_of":
            group.member_of, group.forbidden_aggs = member_of_params(query, suffix, version)
        else:
            group.in_tree = parse_in_tree(value)

    if version >= SAME_SUBTREE_VERSION:
        resourceless = [s for s, g in groups.items() if not g.resources]
        in_subtrees = set().union(*params.same_subtrees)
        if len(resourceless) == len(groups):
            raise bad("There must be at least one resources or resources[$S] parameter.",
                      QUERYPARAM_MISSING_VALUE)
        orphans = [s for s in resourceless if s not in in_subtrees]
        if orphans:
            raise bad("Resourceless suffixed group request should be specified in "
                      f"`same_subtree` query param: bad group(s) - {orphans}.",
                      QUERYPARAM_BAD_VALUE)
        unknown = [s for s in sorted(in_subtrees) if s not in groups]
        if unknown:
            raise bad("Real suffixes should be specified in `same_subtree`: "
                      f"{unknown} not found in {list(groups)}.", QUERYPARAM_BAD_VALUE)
    else:
        _check_orphans(groups)
    if version >= (1, 22):
        _check_conflicts(groups)
    return groups


def _check_orphans(groups: dict[str, RequestGroup]) -> None:
    orphans = [f"required{s}" for s, g in groups.items()
               if g.required_traits and not g.resources]
    if orphans:
        raise bad("All traits parameters must be associated with resources.  Found the "
                  "following orphaned traits keys: " + ", ".join(orphans))
    orphans = [f"member_of{s}" for s, g in groups.items()
               if not g.resources and (g.member_of or g.forbidden_aggs)]
    if orphans:
        raise bad("All member_of parameters must be associated with resources. Found "
                  "the following orphaned member_of keys: " + ", ".join(orphans))
    if not all(g.resources for g in groups.values()):
        raise bad("All request groups must specify resources.")
    if not groups:
        raise bad("At least one request group (`resources` or `resources{$S}`) is "
                  "required.")


def _check_conflicts(groups: dict[str, RequestGroup]) -> None:
    conflicts = [f"required{s}: ({', '.join(sorted(any_of))})"
                 for s, g in groups.items() for any_of in g.required_traits
                 if all(t in g.forbidden_traits for t in any_of)]
    if conflicts:
        raise bad("Conflicting required and forbidden traits found in the following "
                  "traits keys: " + ", ".join(sorted(conflicts)))


def parse_candidate_query(query: Mapping, version: Version = microversion.MAX
                          ) -> tuple[dict[str, RequestGroup], RequestWideParams]:
    """Validate and parse a GET /allocation_candidates query string.

    ``query`` is a multidict (aiohttp's ``request.query`` or a ``MultiDict``).
    Raises Placement's 400s; returns ``(groups, params)``.
    """
    last = {k: query.getall(k)[-1] for k in query}
    validate(last, candidates_schema(version), "Invalid query string parameters")
    params = parse_wide_params(query)
    groups = parse_groups(query, version, params)
    if not params.group_policy and sum(g.use_same_provider for g in groups.values()) > 1:
        raise bad('The "group_policy" parameter is required when specifying more than '
                  'one "resources{N}" parameter.')
    return groups, params


# -- GET /resource_providers ----------------------------------------------------------

PROVIDER_FILTERS = ("resources", "required", "member_of", "in_tree")


async def provider_filter(conn: AsyncConnection, request: web.Request) -> set[str] | None:
    """The uuids of the providers matching GET /resource_providers's filters.

    Looks at the query parameters ``resources`` (1.4+), ``required`` (1.18+;
    ``!`` forbidden from 1.22, ``in:`` any-of and repetition from 1.39),
    ``member_of`` (1.3+; repeated from 1.24, ``!`` from 1.32) and ``in_tree``
    (1.14+), honouring the request's microversion.  Returns ``None`` when none
    of those parameters is present (meaning "no filtering"), otherwise the
    (possibly empty) set of provider uuids that satisfy all of them: each
    provider must itself have the capacity, the traits and the aggregates (no
    sharing, no tree spanning).  The caller validates the query schema first
    (unknown keys, uuid formats); invalid values here raise Placement's 400
    with its exact text.  An unknown ``in_tree`` uuid yields an empty set.
    The caller keeps doing ``name`` / ``uuid`` filtering itself.
    """
    version = microversion.of(request)
    return await filter_providers(conn, request.query, version)


async def filter_providers(conn: AsyncConnection, query: Mapping,
                           version: Version) -> set[str] | None:
    """``provider_filter`` on a plain multidict and microversion."""
    from cloudd.services.placement import candidate_db
    present = [k for k in PROVIDER_FILTERS if k in query]
    if not present:
        return None
    member_of: list[set[str]] = []
    forbidden_aggs: set[str] = set()
    required: list[set[str]] = []
    forbidden: set[str] = set()
    resources: dict[str, int] = {}
    if "member_of" in query:
        member_of, forbidden_aggs = member_of_params(query, "", version)
    if "required" in query:
        required, forbidden = traits_params(query, "", version)
    in_tree = query.getall("in_tree")[-1] if "in_tree" in query else None
    if "resources" in query:
        resources = parse_resources(query.getall("resources")[-1])
    return await candidate_db.matching_providers(
        conn, resources=resources, required=required, forbidden=forbidden,
        member_of=member_of, forbidden_aggs=forbidden_aggs, in_tree=in_tree)


def flat_names(sets: Iterable[set[str]]) -> set[str]:
    out: set[str] = set()
    for s in sets:
        out |= s
    return out
