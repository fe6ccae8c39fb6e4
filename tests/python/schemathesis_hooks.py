"""Schemathesis hooks for tests/python/schemathesis.sh: the API's rules that OpenAPI cannot state.

The document says everything a single parameter or body field must be (patterns, ranges, enums,
lengths); schemathesis' `positive_data_acceptance` then fails any schema-valid request the API
answers with 400. A few rules relate two values, a value and the clock, or a value and the
database, which no JSON Schema can express. `positive_data_acceptance_beyond_schema` is the
built-in check with exactly those rules allowed: a 400 passes only when its problem+json blames
the parameter of a rule below and its `detail` is that rule's message. Any other 400 for a
schema-valid request still fails, as the built-in check would fail it; the script runs the
built-in's replacement in its place (`--exclude-checks positive_data_acceptance`).
"""

import re

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

# (blamed parameter, pattern of `detail`): each a rule across values that a schema cannot state.
BEYOND_SCHEMA = [
    # A window [from, to): from before to, at most `http.max_window_days` long; `to` defaults
    # to now, so a lone `from` is judged against the clock.
    ("from", r"must be before to"),
    ("from", r"the window is .* days long; at most \d+ days"),
    # At most 10 000 buckets of the chosen width in the window.
    ("bucket", r"makes \d+ buckets; at most \d+"),
    # One geo selection: bbox, lat+lon+radius or lat+lon+nearest, and a bbox's minimum not
    # beyond its maximum.
    ("bbox", r"cannot be combined with lat/lon/radius/nearest"),
    ("bbox", r"minimum must not exceed maximum"),
    ("lat", r"required together with lon|lat and lon are required with"),
    ("lon", r"required together with lat"),
    ("radius", r"lat/lon need either radius"),
    ("nearest", r"cannot be combined with radius"),
    # Exports (`/v1/exports/readings.*`): `agg` only with `bucket`; `nearest` not at all.
    ("agg", r"only with bucket="),
    # `sum` only for the cumulative counters (a rule across `agg` and `quantity`).
    ("agg", r"sum is only available for the cumulative counters"),
    # GeoJSON rings are closed (last position = first); a polygon has at most so many positions
    # (blamed on `body` in the search routes, on `geometry` in an admin site).
    (None, r"ring is not closed: the last position must equal the first"),
    (None, r"positions; at most \d+ are accepted"),
    # Admin bodies: an id in the body equals the path's, lat and lon come together, a room needs
    # its building, and what they refer to exists.
    (None, r"differs from the path's"),
    ("lat", r"give both lat and lon, or neither"),
    ("lat/lon", r"give both lat and lon, or neither"),
    ("room_id", r"a room needs its building_id"),
    (None, r"does not exist"),
]


# `/v1/devices?status=…` is the fleet-health view: it takes no geo selection and no paging.
STATUS_VIEW_PARAMETERS = {"bbox", "lat", "lon", "radius", "nearest", "limit", "cursor"}


def _allowed(response, case) -> bool:
    if response.status_code != 400:
        return False
    try:
        problem = response.json()
    except ValueError:
        return False
    if not isinstance(problem, dict):
        return False
    parameter, detail = problem.get("parameter"), str(problem.get("detail", ""))
    if (
        case.path == "/v1/devices"
        and (case.query or {}).get("status")
        and parameter in STATUS_VIEW_PARAMETERS
        and detail.endswith("unknown parameter")
    ):
        return True
    return any(
        (param is None or param == parameter) and re.search(pattern, detail)
        for param, pattern in BEYOND_SCHEMA
    )


@schemathesis.check
def positive_data_acceptance_beyond_schema(ctx, response, case):
    """`positive_data_acceptance`, except for a 400 naming one of the rules in BEYOND_SCHEMA."""
    if _allowed(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)
