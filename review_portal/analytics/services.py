"""The figures on the dashboard, computed once and shown three ways (page, CSV, PDF) from the same rows.

The unit is a *completed case*: a case whose first letter was delivered within the period. Its
concordance comes from the signed opinion, its turnaround runs from submission to that first letter
in business days (weekends and holidays skipped, time waiting on the referrer excluded: the same
arithmetic as the deadlines, assignment.deadlines), and it was on time when that turnaround was
within the target for its priority (TURNAROUND_DAYS).
"""
from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from review_portal.analytics import charts
from review_portal.analytics.boards import board_figures
from review_portal.analytics.stats import median, percentile, share, wilson_interval
from review_portal.assignment.lifecycle import OPEN_REVIEW_STATUSES, AssignmentStatus, ReviewStatus
from review_portal.assignment.models import Assignment, Review
from review_portal.auth.models import SPECIALTY_LABELS, Institution, Role, User
from review_portal.cases.lifecycle import OPEN_STATUSES
from review_portal.cases.models import CANCER_SITES, PRIORITIES, Case
from review_portal.deadlines import DAY, SlaPolicy, business_seconds_between
from review_portal.errors import InvalidInput
from review_portal.letters.models import Letter
from review_portal.messaging.models import InformationRequest
from review_portal.opinions.lifecycle import OpinionStatus
from review_portal.opinions.models import Opinion, opinion_differed
from review_portal.outcomes.models import CONFIRMED_BY, CONFIRMED_OPINION, RECOMMENDATION_FOLLOWED, OutcomeFollowUp

# Van Such M, Lohr R, Beckman T, Naessens JM. J Eval Clin Pract 2017;23(4):870-874 (n = 286).
MAYO_REFERENCE = {"confirmed": 36, "refined": 188, "different": 62}
MAYO_N = 286
PERIODS = {"30d": ("Last 30 days", 30), "90d": ("Last 90 days", 90), "365d": ("Last 12 months", 365),
           "all": ("All time", None)}
DEFAULT_PERIOD = "365d"
# Short enough for a chart axis; the full wording is in opinions.models.RADPEER.
RADPEER_SHORT = {"1": "1 concur", "2a": "2a miss, unlikely significant", "2b": "2b miss, likely significant",
                 "3a": "3a major miss, unlikely significant", "3b": "3b major miss, likely significant"}
CONFIRMED_BY_SHORT = {"pathology": "By pathology", "follow_up": "By follow-up", "other": "By other means"}
EARLIEST = date(2000, 1, 1)


# --- filters ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    period: str = ""  # the preset chosen, if any
    specialty: str = ""
    cancer_site: str = ""
    reviewer_id: int | None = None
    institution_id: int | None = None
    priority: str = ""
    # A reviewer's own figures: the reviewer filter is fixed and nobody else's rows are computed.
    own_only: bool = False

    def query_args(self) -> dict:
        args = {"from": self.start.isoformat(), "to": self.end.isoformat()} if not self.period else {"period": self.period}
        for name in ("specialty", "cancer_site", "priority"):
            if getattr(self, name):
                args[name] = getattr(self, name)
        if self.reviewer_id and not self.own_only:
            args["reviewer"] = self.reviewer_id
        if self.institution_id:
            args["institution"] = self.institution_id
        return args

    @property
    def window(self) -> tuple[datetime, datetime]:
        return (datetime.combine(self.start, time(0), tzinfo=timezone.utc),
                datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=timezone.utc))


def _date_arg(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"The {name} date must look like 2026-01-31.") from None


def _int_arg(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"Choose a {name} from the list.") from None
    if number <= 0:
        raise InvalidInput(f"Choose a {name} from the list.")
    return number


def parse_filters(args, *, user, now: datetime) -> Filters:
    """The dashboard's filters from the query string; a reviewer always gets their own figures only."""
    today = now.date()
    period = (args.get("period") or "").strip()
    if args.get("from") or args.get("to"):
        start = _date_arg(args.get("from") or EARLIEST.isoformat(), "start")
        end = _date_arg(args.get("to") or today.isoformat(), "end")
        period = ""
        if end < start:
            raise InvalidInput("The period ends before it starts.")
        if start < EARLIEST:
            start = EARLIEST
    else:
        period = period or DEFAULT_PERIOD
        if period not in PERIODS:
            raise InvalidInput("Choose a period from the list.")
        days = PERIODS[period][1]
        start, end = (today - timedelta(days=days - 1) if days else EARLIEST), today
    specialty = (args.get("specialty") or "").strip()
    site = (args.get("cancer_site") or "").strip()
    priority = (args.get("priority") or "").strip()
    if specialty and specialty not in SPECIALTY_LABELS:
        raise InvalidInput("Choose a specialty from the list.")
    if site and site not in CANCER_SITES:
        raise InvalidInput("Choose a cancer site from the list.")
    if priority and priority not in PRIORITIES:
        raise InvalidInput("Choose a priority from the list.")
    reviewer_id = _int_arg(args.get("reviewer"), "reviewer")
    institution_id = _int_arg(args.get("institution"), "referring institution")
    if user.role == Role.REVIEWER:
        # Whatever the query string says: a reviewer's figures are their own.
        return Filters(start=start, end=end, period=period, cancer_site=site, priority=priority,
                       reviewer_id=user.id, institution_id=institution_id, own_only=True)
    if user.role not in (Role.COORDINATOR, Role.ADMIN):
        raise InvalidInput("Figures are for the service's staff and reviewers.")
    return Filters(start=start, end=end, period=period, specialty=specialty, cancer_site=site, reviewer_id=reviewer_id,
                   institution_id=institution_id, priority=priority)


def filter_options(db: Session) -> dict:
    reviewers = db.scalars(select(User).where(User.role == Role.REVIEWER).order_by(User.name)).all()
    institutions = db.scalars(select(Institution).order_by(Institution.name)).all()
    return {
        "periods": [(k, v[0]) for k, v in PERIODS.items()],
        "specialties": list(SPECIALTY_LABELS.items()),
        "cancer_sites": list(CANCER_SITES.items()),
        "priorities": list(PRIORITIES.items()),
        "reviewers": [(r.id, r.name) for r in reviewers],
        "institutions": [(i.id, i.name) for i in institutions],
    }


# --- facts -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseFacts:
    case_id: int
    priority: str
    cancer_site: str
    review_type: str
    reviewer_id: int
    reviewer_name: str
    specialty: str
    submitted_at: datetime
    delivered_at: datetime
    turnaround_days: float
    target_days: int
    diagnosis: str
    plan: str
    radpeer: str

    @property
    def on_time(self) -> bool:
        return self.turnaround_days <= self.target_days

    @property
    def differed(self) -> bool:
        return opinion_differed(self.diagnosis, self.plan, self.radpeer)


def hold_seconds(requests, start: datetime, end: datetime, holidays) -> int:
    """Business time the case waited on the referrer between start and end (the paused deadline clock)."""
    total = 0
    for requested_at, answered_at in requests:
        lo = max(requested_at, start)
        hi = min(answered_at or end, end)
        if hi > lo:
            total += business_seconds_between(lo, hi, holidays)
    return total


def turnaround_business_days(submitted_at: datetime, delivered_at: datetime, holds, holidays) -> float:
    elapsed = business_seconds_between(submitted_at, delivered_at, holidays)
    return max(0, elapsed - hold_seconds(holds, submitted_at, delivered_at, holidays)) / DAY


def _case_filters(query, f: Filters, referring):
    if f.cancer_site:
        query = query.where(Case.cancer_site == f.cancer_site)
    if f.priority:
        query = query.where(Case.priority == f.priority)
    if f.institution_id:
        query = query.where(referring.institution_id == f.institution_id)
    return query


def completed_cases(db: Session, f: Filters, policy: SlaPolicy) -> list[CaseFacts]:
    referring = aliased(User)
    reviewer = aliased(User)
    start, end = f.window
    query = (select(Case, Opinion, Letter.delivered_at, reviewer)
             .join(Opinion, Opinion.case_id == Case.id)
             .join(Letter, (Letter.case_id == Case.id) & (Letter.version == 1))
             .join(referring, referring.id == Case.referring_id)
             .join(reviewer, reviewer.id == Opinion.reviewer_id)
             .where(Opinion.status == OpinionStatus.SIGNED.value, Letter.delivered_at >= start, Letter.delivered_at < end)
             .order_by(Letter.delivered_at, Case.id))
    query = _case_filters(query, f, referring)
    if f.reviewer_id:
        query = query.where(Opinion.reviewer_id == f.reviewer_id)
    if f.specialty:
        query = query.where(reviewer.specialty == f.specialty)
    rows = db.execute(query).all()
    holds: dict[int, list] = defaultdict(list)
    if rows:
        ids = [r[0].id for r in rows]
        for req in db.scalars(select(InformationRequest).where(InformationRequest.case_id.in_(ids))):
            holds[req.case_id].append((req.requested_at, req.answered_at))
    facts = []
    for case, opinion, delivered_at, person in rows:
        facts.append(CaseFacts(
            case_id=case.id, priority=case.priority, cancer_site=case.cancer_site, review_type=case.review_type,
            reviewer_id=person.id, reviewer_name=person.name, specialty=person.specialty or "",
            submitted_at=case.submitted_at, delivered_at=delivered_at,
            turnaround_days=turnaround_business_days(case.submitted_at, delivered_at, holds[case.id], policy.holidays),
            target_days=int(policy.turnaround_days.get(case.priority, 5)),
            diagnosis=opinion.diagnosis_concordance, plan=opinion.plan_concordance, radpeer=opinion.radpeer_score,
        ))
    return facts


# --- figures ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"  # text | int | pct | ci | days


@dataclass
class Figure:
    key: str
    title: str
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    note: str = ""
    chart: str = ""
    headline: str = ""

    def display_rows(self) -> list[list[str]]:
        return [[display(v, c.kind) for v, c in zip(row, self.columns)] for row in self.rows]

    def csv_header(self) -> list[str]:
        header = []
        for c in self.columns:
            header += [f"{c.name} low (%)", f"{c.name} high (%)"] if c.kind == "ci" else [c.name + (" (%)" if c.kind == "pct" else "")]
        return header

    def csv_rows(self) -> list[list[str]]:
        return [[cell for v, c in zip(row, self.columns) for cell in csv_cells(v, c.kind)] for row in self.rows]


DASH = "–"


def display(value, kind: str) -> str:
    """How a number reads on the page and in the PDF: one decimal for percentages and days."""
    if value is None:
        return DASH
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "ci":
        return f"{100 * value[0]:.1f}–{100 * value[1]:.1f}%"
    if kind == "days":
        return f"{value:.1f}"
    return str(value)


def csv_cells(value, kind: str) -> list[str]:
    """The same rounding as the page, without the symbols, so a spreadsheet reads numbers."""
    if kind == "ci":
        return ["", ""] if value is None else [f"{100 * value[0]:.1f}", f"{100 * value[1]:.1f}"]
    if value is None:
        return [""]
    if kind == "pct":
        return [f"{100 * value:.1f}"]
    if kind == "days":
        return [f"{value:.1f}"]
    return [str(value)]


def _distribution(title: str, key: str, labels: dict, values: list[str], *, reference: dict | None = None,
                  reference_n: int | None = None, note: str = "") -> Figure:
    n = len(values)
    counts = Counter(values)
    columns = [Column("Category"), Column("Cases", "int"), Column("Share", "pct"), Column("95% CI", "ci")]
    if reference:
        columns.append(Column(f"Mayo 2017 (n={reference_n})", "pct"))
    fig = Figure(key=key, title=title, columns=columns, note=note)
    bars = []
    for code, label in labels.items():
        k = counts.get(code, 0)
        row = [label, k, share(k, n), wilson_interval(k, n)]
        ref = share(reference[code], reference_n) if reference else None
        if reference:
            row.append(ref)
        fig.rows.append(row)
        bars.append(charts.Bar(label, (100 * share(k, n) if n else None,),
                               ((100 * row[3][0], 100 * row[3][1]) if n else None,),
                               reference=100 * ref if ref is not None else None))
    total = ["All", n, share(n, n), None] + ([share(reference_n, reference_n)] if reference else [])
    fig.rows.append(total)
    fig.chart = charts.hbar_chart(bars, [charts.Series("This service", "primary")], title=title, unit="%",
                                  max_value=100, reference_label="Mayo 2017" if reference else None)
    return fig


def concordance_figures(facts: list[CaseFacts]) -> list[Figure]:
    diagnosis = [c.diagnosis for c in facts if c.diagnosis]
    plan = [c.plan for c in facts if c.plan]
    radpeer = [c.radpeer for c in facts if c.radpeer]
    labels = {"confirmed": "Confirmed", "refined": "Refined", "different": "Different"}
    return [
        _distribution("Diagnosis concordance", "diagnosis", labels, diagnosis, reference=MAYO_REFERENCE,
                      reference_n=MAYO_N, note="Signed oncology and pathology opinions; the orange tick is the Mayo "
                      "Clinic figure (Van Such et al. 2017: same 12%, refined 66%, different 21%)."),
        _distribution("Plan concordance", "plan", {"agree": "Agree", "modify": "Modify", "different": "Different"}, plan,
                      note="Whether the reviewer agreed with the plan in question."),
        _distribution("RADPEER scores of radiology re-reads", "radpeer",
                      RADPEER_SHORT, radpeer,
                      note="ACR RADPEER (2016) score given to the original read; 2b and 3b are likely clinically significant."),
    ]


def turnaround_figure(facts: list[CaseFacts], policy: SlaPolicy) -> Figure:
    fig = Figure(key="turnaround", title="Turnaround by priority (business days, holds excluded)", columns=[
        Column("Priority"), Column("Cases", "int"), Column("Median", "days"), Column("90th percentile", "days"),
        Column("Target", "int"), Column("On time", "int"), Column("On time share", "pct"), Column("95% CI", "ci")],
        note="From submission to the first letter delivered; time waiting on the referrer for information is not counted.")
    bars = []
    groups = [(label, [c for c in facts if c.priority == code], policy.turnaround_days.get(code))
              for code, label in PRIORITIES.items()]
    groups.append(("All", facts, None))
    for label, group, target in groups:
        days = [c.turnaround_days for c in group]
        on_time = sum(1 for c in group if c.on_time)
        row = [label, len(group), median(days), percentile(days, 90), target, on_time, share(on_time, len(group)),
               wilson_interval(on_time, len(group))]
        fig.rows.append(row)
        bars.append(charts.Bar(label, (row[2], row[3]), reference=float(target) if target else None))
    fig.chart = charts.hbar_chart(bars, [charts.Series("Median", "primary"), charts.Series("90th percentile", "secondary")],
                                  title=fig.title, unit=" d", reference_label="Target")
    on_time, n = fig.rows[-1][5], fig.rows[-1][1]
    fig.headline = f"{display(share(on_time, n), 'pct')} of {n} cases on time" if n else ""
    return fig


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def volume_figure(db: Session, f: Filters, facts: list[CaseFacts]) -> Figure:
    """Referrals received and letters delivered per ISO week (per month when the period is long)."""
    referring = aliased(User)
    start, end = f.window
    query = (select(Case.submitted_at).join(referring, referring.id == Case.referring_id)
             .where(Case.submitted_at >= start, Case.submitted_at < end))
    query = _case_filters(query, f, referring)
    if f.reviewer_id or f.specialty:
        lead_reviewer = aliased(User)
        query = (query.join(Review, (Review.case_id == Case.id) & Review.is_lead.is_(True))
                 .join(Assignment, (Assignment.review_id == Review.id) & Assignment.active.is_(True))
                 .join(lead_reviewer, lead_reviewer.id == Assignment.reviewer_id))
        if f.reviewer_id:
            query = query.where(lead_reviewer.id == f.reviewer_id)
        if f.specialty:
            query = query.where(lead_reviewer.specialty == f.specialty)
    received = [d for (d,) in db.execute(query)]
    delivered = [c.delivered_at for c in facts]
    first = min([d.date() for d in received + delivered], default=f.end)
    lo = max(f.start, first)
    weeks = (f.end - lo).days // 7 + 1
    monthly = weeks > 60
    if monthly:
        bucket = lambda d: d.replace(day=1)  # noqa: E731
        label = lambda d: f"{d:%Y-%m}"  # noqa: E731
    else:
        bucket, label = _week_start, (lambda d: f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}")
    keys, cursor = [], bucket(lo)
    while cursor <= f.end:
        keys.append(cursor)
        cursor = bucket(cursor + timedelta(days=32)) if monthly else cursor + timedelta(days=7)
    rec, dlv = Counter(bucket(d.date()) for d in received), Counter(bucket(d.date()) for d in delivered)
    fig = Figure(key="volume", title="Volume by " + ("month" if monthly else "week"),
                 columns=[Column("Month" if monthly else "Week"), Column("Referrals received", "int"),
                          Column("Letters delivered", "int")],
                 note="Referrals by the date they were submitted; letters by the date the first letter was delivered.")
    for k in keys:
        fig.rows.append([label(k), rec.get(k, 0), dlv.get(k, 0)])
    fig.rows.append(["Total", len(received), len(delivered)])
    fig.chart = charts.column_chart([r[0] for r in fig.rows[:-1]], [(r[1], r[2]) for r in fig.rows[:-1]],
                                    [charts.Series("Received", "muted"), charts.Series("Delivered", "primary")],
                                    title=fig.title)
    return fig


def workload_figure(db: Session, f: Filters, facts: list[CaseFacts]) -> Figure:
    """Per reviewer: opinions signed and contributing reviews completed in the period, reviews open now."""
    referring = aliased(User)
    start, end = f.window
    contributing = (select(Assignment.reviewer_id).join(Review, Review.id == Assignment.review_id)
                    .join(Case, Case.id == Review.case_id).join(referring, referring.id == Case.referring_id)
                    .where(Review.is_lead.is_(False), Review.status == ReviewStatus.COMPLETED.value,
                           Assignment.status == AssignmentStatus.COMPLETED.value,
                           Review.completed_at >= start, Review.completed_at < end))
    open_now = (select(Assignment.reviewer_id).join(Review, Review.id == Assignment.review_id)
                .join(Case, Case.id == Review.case_id).join(referring, referring.id == Case.referring_id)
                .where(Review.status.in_([s.value for s in OPEN_REVIEW_STATUSES]), Assignment.active.is_(True),
                       Case.status.in_([s.value for s in OPEN_STATUSES])))
    counts = {}
    for name, query in (("contributing", contributing), ("open", open_now)):
        query = _case_filters(query, f, referring)
        if f.reviewer_id:
            query = query.where(Assignment.reviewer_id == f.reviewer_id)
        counts[name] = Counter(r for (r,) in db.execute(query))
    people_query = select(User).where(User.role == Role.REVIEWER).order_by(User.name)
    if f.reviewer_id:
        people_query = people_query.where(User.id == f.reviewer_id)
    if f.specialty:
        people_query = people_query.where(User.specialty == f.specialty)
    by_reviewer = defaultdict(list)
    for c in facts:
        by_reviewer[c.reviewer_id].append(c)
    fig = Figure(key="workload", title="Reviewer workload", columns=[
        Column("Reviewer"), Column("Specialty"), Column("Opinions signed", "int"), Column("Contributing reviews", "int"),
        Column("Open now", "int"), Column("Median turnaround", "days"), Column("On time share", "pct")],
        note="Opinions and contributing reviews completed in the period; open reviews as of now (offered or accepted).")
    bars = []
    for person in db.scalars(people_query):
        mine = by_reviewer.get(person.id, [])
        row = [person.name, person.specialty_label, len(mine), counts["contributing"].get(person.id, 0),
               counts["open"].get(person.id, 0), median([c.turnaround_days for c in mine]),
               share(sum(1 for c in mine if c.on_time), len(mine))]
        if not any(row[2:5]):
            continue
        fig.rows.append(row)
        bars.append(charts.Bar(person.name, (float(row[2] + row[3]), float(row[4]))))
    fig.chart = charts.hbar_chart(bars, [charts.Series("Completed in period", "primary"), charts.Series("Open now", "accent")],
                                  title=fig.title)
    return fig


def outcome_figures(db: Session, facts: list[CaseFacts]) -> list[Figure]:
    """What the referrers told us months later, for the completed cases in view."""
    ids = [c.case_id for c in facts]
    follow_ups = list(db.scalars(select(OutcomeFollowUp).where(OutcomeFollowUp.case_id.in_(ids)))) if ids else []
    answered = [o for o in follow_ups if o.is_answered]
    followed = _distribution("Was the recommendation followed?", "outcome_followed", RECOMMENDATION_FOLLOWED,
                             [o.recommendation_followed for o in answered],
                             note=f"Outcome follow-ups asked: {len(follow_ups)}; answered: {len(answered)}.")
    differed = [o for o in answered if o.opinions_differed]
    confirmed = Figure(key="outcome_confirmed", title="Where the second opinion differed: which was confirmed",
                       columns=[Column("Confirmed"), Column("Cases", "int"), Column("Share", "pct"),
                                Column("95% CI", "ci")] + [Column(CONFIRMED_BY_SHORT[code], "int") for code in CONFIRMED_BY],
                       note="Answers to outcome follow-ups on cases where the diagnosis was refined or different, "
                            "the plan changed, or the RADPEER score showed a discrepancy.")
    n = len(differed)
    bars = []
    for code, label in CONFIRMED_OPINION.items():
        group = [o for o in differed if o.confirmed_opinion == code]
        row = [label, len(group), share(len(group), n), wilson_interval(len(group), n)]
        row += [sum(1 for o in group if o.confirmed_by == by) for by in CONFIRMED_BY]
        confirmed.rows.append(row)
        bars.append(charts.Bar(label, (100 * row[2] if n else None,),
                               ((100 * row[3][0], 100 * row[3][1]) if n else None,)))
    confirmed.rows.append(["All", n, share(n, n), None] + [sum(1 for o in differed if o.confirmed_by == by)
                                                            for by in CONFIRMED_BY])
    confirmed.chart = charts.hbar_chart(bars, [charts.Series("Share of answers", "primary")], title=confirmed.title,
                                        unit="%", max_value=100)
    k = len([o for o in differed if o.confirmed_opinion == "second_opinion"])
    if n:
        ci = wilson_interval(k, n)
        confirmed.headline = (f"Of {n} answered cases where the second opinion differed, it was confirmed in {k} "
                              f"({display(share(k, n), 'pct')}, 95% CI {display(ci, 'ci')}).")
    return [followed, confirmed]


@dataclass
class Dashboard:
    filters: Filters
    figures: list[Figure]
    completed: int
    generated_at: datetime

    def figure(self, key: str) -> Figure:
        for fig in self.figures:
            if fig.key == key:
                return fig
        raise KeyError(key)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.figures]


def build_dashboard(db: Session, f: Filters, *, policy: SlaPolicy, now: datetime) -> Dashboard:
    facts = completed_cases(db, f, policy)
    figures = concordance_figures(facts)
    figures.append(turnaround_figure(facts, policy))
    figures.append(volume_figure(db, f, facts))
    if not f.own_only:
        # Other reviewers' names and numbers: staff only.
        figures.append(workload_figure(db, f, facts))
    figures += outcome_figures(db, facts)
    figures += board_figures(db, [c.case_id for c in facts])  # the multidisciplinary opinions
    from review_portal.analytics.summaries import patient_summary_figure  # it builds on this module's Figure

    figures.append(patient_summary_figure(db, facts))
    return Dashboard(filters=f, figures=figures, completed=len(facts), generated_at=now)


def figure_csv(fig: Figure) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(fig.csv_header())
    writer.writerows(fig.csv_rows())
    return out.getvalue()


def describe_filters(f: Filters, db: Session) -> list[str]:
    """The filters in words, printed on the page, in the PDF and atop nothing else (CSV stays a plain table)."""
    words = [f"{f.start:%d %b %Y} – {f.end:%d %b %Y}" if f.start > EARLIEST else f"up to {f.end:%d %b %Y}"]
    if f.specialty:
        words.append(SPECIALTY_LABELS.get(f.specialty, f.specialty))
    if f.cancer_site:
        words.append(CANCER_SITES[f.cancer_site])
    if f.priority:
        words.append(PRIORITIES[f.priority])
    if f.reviewer_id:
        person = db.get(User, f.reviewer_id)
        words.append(f"reviewer {person.name}" if person else "reviewer (unknown)")
    if f.institution_id:
        inst = db.get(Institution, f.institution_id)
        words.append(f"referred by {inst.name}" if inst else "institution (unknown)")
    return words

