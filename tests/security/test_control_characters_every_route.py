"""Property: on EVERY route of app.url_map (including ones added later), text with a control character in a
query argument, a form field, a path segment, a JSON body or an uploaded file's name is a 400 that names it,
never a 500, for a logged-in user. Small example counts per route keep the whole sweep well under a minute."""
from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REFUSED = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + ["\x7f", "\ufffe", "\uffff"]
# Names the portal's forms and searches really use, so the hostile value reaches real fields too.
NAMES = ["q", "page", "email", "password", "body", "question", "patient", "user", "action", "status", "next",
         "reason", "PatientName", "StudyInstanceUID", "StudyDate", "includefield", "name", "note", "code"]
EXAMPLES_PER_ROUTE = 5


def hostile_text(extra=()):
    """Any text with at least one refused character somewhere in it."""
    return st.tuples(st.text(max_size=12), st.sampled_from(REFUSED + list(extra)), st.text(max_size=12)).map("".join)


def _requests(rule):
    methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    strings = [a for a, conv in rule._converters.items() if type(conv).__name__ in ("UnicodeConverter", "PathConverter")]
    places = ["query"] + (["path"] if strings else [])
    return st.tuples(st.sampled_from(methods), st.sampled_from(places + ["form", "json", "filename"]),
                     st.sampled_from(NAMES), hostile_text(), st.sampled_from(strings or [None]))


def _url(app, rule, ids, path_arg=None, path_value=None):
    from flask import url_for

    fixed = {"filename": "css/portal.css", "fmt": "png"}
    values = {arg: fixed.get(arg, ids.get(arg, 1)) for arg in rule.arguments}
    if path_arg:
        values[path_arg] = path_value
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def test_control_characters_anywhere_are_a_400_on_every_route(app, make_case, login_as):
    case = make_case("in_review", cancer_site="thoracic")
    ids = {"case_id": case.id}
    client = login_as("admin")
    rules = [r for r in app.url_map.iter_rules()]
    assert len(rules) > 50

    for rule in rules:
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(_requests(rule))
        def check(request):
            method, place, name, value, path_arg = request
            if place in ("form", "json", "filename") and method == "GET":
                place = "query"  # a GET carries its input in the query
            kwargs = {}
            if place == "path" and path_arg:
                url = _url(app, rule, ids, path_arg, value)
            else:
                url = _url(app, rule, ids)
                if place == "query":
                    kwargs["query_string"] = {name: value}
                elif place == "form":
                    kwargs["data"] = {name: value}
                elif place == "json":
                    kwargs["data"] = json.dumps({name: [value]})
                    kwargs["content_type"] = "application/json"
                else:
                    kwargs["data"] = {name: (io.BytesIO(b"x"), value.replace("/", "").replace("\\", "") + ".pdf")}
                    kwargs["content_type"] = "multipart/form-data"
            r = client.open(url, method=method, buffered=True, **kwargs)
            body = r.get_data(as_text=True)
            assert r.status_code != 500, (rule.rule, method, place, value, body[:300])
            assert r.status_code == 400 and ("); remove it" in body or "); rename the file" in body), (
                rule.rule, method, place, repr(value), r.status_code, body[:300])

        check()
    # The user is still logged in: nothing on the way logged them out or broke their session.
    assert client.get("/cases").status_code == 200
