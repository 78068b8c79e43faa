"""Where the workers' time goes: py-spy's raw (collapsed) stacks summed into the issue's per-request-work table.

    python benchmarks/profile_report.py profile.txt [--top 25]

Input: `py-spy record --format raw --idle` output, one line per distinct stack, `frame;frame;... count`,
each frame `function (file:line)`. A sample counts for a row when any frame of its stack matches the row
(shares are inclusive and overlap: "waiting on PostgreSQL" cuts across "loading the user", say).
Shares are of the samples taken inside a request (a stack through Flask's wsgi_app); gthread's idle
threads waiting for a connection are left out, and printed separately.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

# (row, pattern on one frame "function (file:line)"). Patterns name functions, and files where names are generic.
F = r"(?:^|[.>])"  # a frame is "Qualified.name (path/file.py:line)"; match the last name
WORK = [
    ("waiting on PostgreSQL (psycopg I/O)", r"\((?:.*/)?psycopg/"),
    ("loading the user (login manager + user_loader)", F + r"(?:_load_user|load_user) \("),
    ("resolving the server-side session", r"\((?:.*/)?review_portal/auth/sessions\.py"),
    ("the commit at the end of the request (incl. sealing)", F + r"_commit_or_rollback \("),
    ("sealing the audit chain", F + r"seal\w* \((?:.*/)?review_portal/audit/"),
    ("writing audit rows", F + r"record \((?:.*/)?review_portal/audit/"),
    ("the image-view audit", F + r"_audit_pixels \("),
    ("the unread-notification count", F + r"\w*unread\w* \((?:.*/)?review_portal/"),
    ("the access log line", F + r"_log_request \((?:.*/)?review_portal/logs\.py"),
    ("rendering templates (Jinja)", r"\((?:.*/)?jinja2/"),
    ("SQLAlchemy ORM", r"\((?:.*/)?sqlalchemy/orm/"),
    ("decoding/rendering pixels (web process or sandbox)",
     r"\((?:.*/)?review_portal/imaging/(?:rendering|decoding|decoders|reading)\.py"),
    ("waiting on the decode sandbox", F + r"render_frame \((?:.*/)?review_portal/imaging/sandboxed\.py"),
    ("letters (PDF)", r"\((?:.*/)?review_portal/letters/"),
    ("CSRF / forms (WTForms)", r"\((?:.*/)?(?:wtforms|flask_wtf)/"),
]
FRAME = re.compile(r"^(.*) \((.*?)(?::(\d+))?\)$")
# Request work: a stack through Flask's wsgi_app, or the decode sandbox rendering for a request.
IN_REQUEST = re.compile(F + r"(?:wsgi_app \((?:.*/)?flask/app\.py|_render_in_child \()")


def parse(raw: str):
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        yield stack.split(";"), int(count)


def report(raw: str, top: int = 25, out=sys.stdout) -> dict[str, float]:
    total = in_request = 0
    rows: Counter = Counter()
    functions: Counter = Counter()
    compiled = [(label, re.compile(p)) for label, p in WORK]
    for frames, n in parse(raw):
        total += n
        if not any(IN_REQUEST.search(f) for f in frames):
            continue
        in_request += n
        for label, pattern in compiled:
            if any(pattern.search(f) for f in frames):
                rows[label] += n
        seen = set()
        for f in frames:  # our own functions, inclusive (a recursive function counts once per sample)
            m = FRAME.match(f)
            if m and "review_portal/" in m.group(2):
                key = f"{m.group(1)} ({m.group(2).split('review_portal/', 1)[1]})"
                if key not in seen:
                    seen.add(key)
                    functions[key] += n
    if not in_request:
        print("No samples inside a request (is py-spy allowed to attach? run as root or with CAP_SYS_PTRACE)", file=out)
        return {}
    print(f"\n### Profile: {in_request} samples inside requests of {total} in all "
          f"({(total - in_request) * 100 / total:.0f}% idle threads or outside requests)\n", file=out)
    print("| per-request work | share of in-request samples |", file=out)
    print("|---|---:|", file=out)
    shares = {}
    for label, _ in WORK:
        shares[label] = rows[label] * 100 / in_request
        print(f"| {label} | {shares[label]:.1f}% |", file=out)
    print(f"\n### Top {top} portal functions (inclusive share of in-request samples)\n", file=out)
    print("| function | share |", file=out)
    print("|---|---:|", file=out)
    for key, n in functions.most_common(top):
        print(f"| `{key}` | {n * 100 / in_request:.1f}% |", file=out)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with open(args.raw) as fh:
        report(fh.read(), args.top)


if __name__ == "__main__":
    main()
