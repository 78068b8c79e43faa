"""Demo history: sixty-odd completed cases over the past months, for the figures dashboard.

Built through the same services as real work (referral, routing with load balancing, acceptance,
requests for information with held deadlines, draft, acknowledgement, closing, outcome follow-ups),
replayed in time order so the reviewers' loads and the routing are what they would have been.
Two shortcuts keep `make run` fast, both visible to anyone who looks:
- signing does not re-check the reviewer's password (an argon2 hash per case, ~0.2 s each), and
- their letters are one shared placeholder PDF that says so, instead of a rendered letter per case.
Cases signed through the portal itself always get their real letter.
"""
from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import update

from review_portal.audit.services import record
from review_portal.cases.lifecycle import CaseStatus, transition
from review_portal.cases.services import HistoryItem, Referral, close_case
from review_portal.deadlines import DAY, add_business_seconds, business_seconds_between, is_business_day
from review_portal.letters.models import Letter
from review_portal.letters.services import acknowledge_letter, new_verification_code
from review_portal.messaging.services import request_information
from review_portal.notifications.models import Notification
from review_portal.opinions.services import OpinionDraft, freeze_signed_opinion, save_draft
from review_portal.outcomes.services import OutcomeAnswer, record_outcome, request_due_outcomes
from review_portal.workflow.assignments import accept_offer
from review_portal.workflow.conversations import answer_information_request
from review_portal.workflow.referrals import submit_referral

PLACEHOLDER_TEXT = (
    "Demonstration archive. This case belongs to the synthetic history loaded with the demo data. To keep "
    "loading the demo fast, letters of archived demo cases are not rendered one by one: every archived case "
    "shares this placeholder. The signed opinion itself is shown on the case page. Every opinion signed in "
    "the portal gets its real, individually rendered letter."
)

# Cases per site for oncology opinions and for radiology re-reads (sites a demo radiologist reads).
ONCOLOGY_SITES = ["breast"] * 10 + ["thoracic"] * 8 + ["gi"] * 8 + ["gu"] * 5 + ["gynecologic"] * 4 + \
    ["head_neck"] * 4 + ["neuro"] * 2 + ["hematologic"] * 3 + ["skin"] * 2 + ["sarcoma"] * 2
RADIOLOGY_SITES = ["thoracic"] * 3 + ["breast"] * 2 + ["gi"] * 2 + ["neuro"] * 2 + ["head_neck", "gu", "sarcoma"]
# Roughly the Mayo mix (12% / 66% / 21%) for 48 oncology opinions.
DIAGNOSES = ["confirmed"] * 6 + ["refined"] * 32 + ["different"] * 10
PLAN_GIVEN = {"confirmed": ["agree"] * 5 + ["modify"], "refined": ["agree"] * 2 + ["modify"] * 3 + ["different"],
              "different": ["modify"] * 2 + ["different"] * 3}
RADPEER_SCORES = ["1"] * 7 + ["2a", "2a", "2b", "3a", "3b"]

SITE_TEXT = {
    "breast": ("Invasive breast carcinoma NST, grade 2, ER+, HER2-negative, cT2N0.", "Breast-conserving surgery, then endocrine therapy."),
    "thoracic": ("Lung adenocarcinoma, cT2aN1M0 (stage IIB).", "Lobectomy followed by adjuvant chemotherapy."),
    "gi": ("Colon adenocarcinoma, pT3N1a, MSS.", "Adjuvant CAPOX for three months."),
    "gu": ("Prostate adenocarcinoma, Gleason 3+4, cT2b, PSA 9.", "Radical prostatectomy."),
    "gynecologic": ("High-grade serous ovarian carcinoma, FIGO IIIC.", "Primary debulking surgery, then carboplatin-paclitaxel."),
    "head_neck": ("Oropharyngeal SCC, p16-positive, cT2N1.", "Chemoradiotherapy with weekly cisplatin."),
    "neuro": ("Glioblastoma, IDH-wildtype, after resection.", "Radiotherapy 60 Gy with temozolomide."),
    "hematologic": ("Diffuse large B-cell lymphoma, stage II.", "R-CHOP for six cycles."),
    "skin": ("Cutaneous melanoma, pT3a, sentinel node positive.", "Adjuvant anti-PD-1 for one year."),
    "sarcoma": ("Soft-tissue sarcoma of the thigh, grade 2, 7 cm.", "Wide excision and postoperative radiotherapy."),
}
FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Leo",
               "Mona", "Nils", "Olga", "Pavel", "Rosa", "Stefan", "Tara", "Uwe", "Vera", "Walter", "Yara", "Zeno"]
LAST_NAMES = ["Archive", "Sample", "Example", "Demo", "Placeholder", "Fiction", "Synthetic", "Specimen"]


@dataclass(order=True)
class _Event:
    at: datetime
    seq: int
    step: str = field(compare=False)
    spec: dict = field(compare=False)


def _business_moment(day: date, hour: int, holidays) -> datetime:
    while not is_business_day(day, holidays):
        day += timedelta(days=1)
    return datetime.combine(day, time(hour, 0), tzinfo=timezone.utc)


def _turnaround_days(rng: random.Random, priority: str) -> float:
    """Business days from referral to letter: most well within target, a tail beyond it."""
    if priority == "urgent":
        return max(0.3, rng.lognormvariate(0.25, 0.45))   # median ~1.3, ~15% over 2 days
    return max(0.8, rng.lognormvariate(1.2, 0.38))        # median ~3.3, ~10% over 5 days


def _specs(rng: random.Random, referrers, now: datetime, holidays) -> list[dict]:
    kinds = [("oncology_opinion", s) for s in ONCOLOGY_SITES] + [("radiology_read", s) for s in RADIOLOGY_SITES]
    rng.shuffle(kinds)
    diagnoses, scores = DIAGNOSES[:], RADPEER_SCORES[:]
    rng.shuffle(diagnoses)
    rng.shuffle(scores)
    specs = []
    for n, (review_type, site) in enumerate(kinds):
        days_ago = 14 + int(196 * n / len(kinds)) + rng.randint(0, 3)
        submitted = _business_moment((now - timedelta(days=days_ago)).date(), rng.randint(8, 15), holidays)
        priority = "urgent" if rng.random() < 0.25 else "routine"
        spec = {"n": n, "review_type": review_type, "discipline": _discipline(review_type, site), "site": site, "priority": priority, "submitted": submitted,
                "referrer": rng.choice(referrers), "turnaround": _turnaround_days(rng, priority),
                "hold_days": rng.randint(2, 6) if rng.random() < 0.15 else 0}
        if review_type == "radiology_read":
            spec["radpeer"] = scores.pop()
        else:
            spec["diagnosis"] = diagnoses.pop()
            spec["plan"] = rng.choice(PLAN_GIVEN[spec["diagnosis"]])
        specs.append(spec)
    return specs


def _discipline(review_type: str, site: str) -> str:
    """What the demo referrer asks for (the demo's head-and-neck and neuro oncologist is a radiation oncologist;
    the sarcoma and melanoma questions are surgical)."""
    if review_type == "radiology_read":
        return "radiology"
    if site in ("head_neck", "neuro"):
        return "radiation_oncology"
    return "surgical_oncology" if site in ("sarcoma", "skin") else "medical_oncology"


def _draft(spec: dict) -> OpinionDraft:
    diagnosis, plan = SITE_TEXT[spec["site"]]
    if spec["review_type"] == "radiology_read":
        score = spec["radpeer"]
        comment = "" if score in ("1", "2a") else "The original read missed a finding that changes staging."
        return OpinionDraft(findings="Re-read of the submitted study; findings as described in the impression.",
                            impression="Concur with the original report." if score == "1" else
                            "Additional finding not described in the original report.",
                            radpeer_score=score, radpeer_comment=comment)
    reviewer_diagnosis = {"confirmed": diagnosis, "refined": diagnosis.rstrip(".") + ", with refined staging after review.",
                          "different": "A different diagnosis after review of pathology and imaging."}[spec["diagnosis"]]
    recommended = {"agree": plan, "modify": plan.rstrip(".") + ", with the changes set out in the rationale.",
                   "different": "A different treatment plan, as set out in the rationale."}[spec["plan"]]
    return OpinionDraft(diagnosis_concordance=spec["diagnosis"], plan_concordance=spec["plan"],
                        reviewer_diagnosis=reviewer_diagnosis, recommended_plan=recommended,
                        rationale="Synthetic demonstration rationale.")


def _sign_archived(db, case, opinion, *, by, now: datetime) -> None:
    """Sign without re-checking the password (see the module docstring): the same signature otherwise."""
    freeze_signed_opinion(db, case, opinion, by=by, ip="127.0.0.1", now=now, note="demo archive")


def _placeholder_letter(db, case, opinion, *, blob_key: str, sha256: str, by, now: datetime) -> Letter:
    letter = Letter(case_id=case.id, opinion_id=opinion.id, version=1, blob_key=blob_key, sha256=sha256,
                    verification_code=new_verification_code(), issued_at=now, delivered_at=now)
    db.add(letter)
    transition(case, CaseStatus.LETTER_DELIVERED, now, by=by, ip="127.0.0.1", why="letter version 1 issued")
    db.flush()
    record(db, action="letter.issued", by=by, ip="127.0.0.1", now=now, case=case, object_type="letter",
           object_id=letter.id, detail=f"version=1; sha256={sha256}; demo archive placeholder")
    return letter


def seed_archive(app, db, storage, *, referrers, now: datetime, policy, seed: int = 2026) -> dict:
    """Replay the history in time order; then ask and answer outcome follow-ups. Returns counts."""
    from weasyprint import HTML

    rng = random.Random(seed)  # nosec B311 - synthetic demo data, reproducible on purpose
    pdf = HTML(string=f"<h1>Demonstration archive</h1><p>{PLACEHOLDER_TEXT}</p>").write_pdf()
    blob_key, _ = storage.put_bytes(pdf)
    sha256 = hashlib.sha256(pdf).hexdigest()
    holidays = policy.holidays
    ctx = {"ip": "127.0.0.1"}
    events: list[_Event] = []
    seq = 0

    def push(at, step, spec):
        nonlocal seq
        seq += 1
        heapq.heappush(events, _Event(at, seq, step, spec))

    for spec in _specs(rng, referrers, now, holidays):
        push(spec["submitted"], "submit", spec)
    case_ids = []
    while events:
        ev = heapq.heappop(events)
        spec, at = ev.spec, ev.at
        if ev.step == "submit":
            name = f"{FIRST_NAMES[spec['n'] % len(FIRST_NAMES)]} {LAST_NAMES[spec['n'] % len(LAST_NAMES)]}"
            diagnosis, plan = SITE_TEXT[spec["site"]]
            referral = Referral(
                patient_name=name, patient_dob=date(1940 + rng.randint(0, 45), rng.randint(1, 12), rng.randint(1, 28)),
                patient_sex=rng.choice(["female", "male"]), patient_mrn=f"ARC-{10000 + spec['n']}",
                question="Do you agree with the diagnosis and the proposed plan?", diagnosis_in_question=diagnosis,
                plan_in_question=plan, disciplines=(spec["discipline"],), cancer_site=spec["site"],
                priority=spec["priority"],
                history=[HistoryItem((at - timedelta(days=20)).date(), "diagnosis", "Synthetic history entry.")])
            case, _ = submit_referral(db, storage, referral, documents=[], scans=[], by=spec["referrer"], now=at,
                                      turnaround_days=app.config["TURNAROUND_DAYS"], holidays=holidays, **ctx)
            if case.active_assignment is None:
                raise RuntimeError(f"demo archive case {case.reference} found no reviewer: {case.lead_review.triage_reason}")
            spec["case"] = case
            case_ids.append(case.id)
            push(at + timedelta(hours=rng.randint(1, 3)), "accept", spec)
        elif ev.step == "accept":
            case = spec["case"]
            accept_offer(db, case.active_assignment, by=case.reviewer, now=at, **ctx)
            sign_at = add_business_seconds(spec["submitted"], int(spec["turnaround"] * DAY), holidays)
            if spec["hold_days"]:
                ask_at = min(at + timedelta(hours=4), sign_at - timedelta(hours=1))
                push(max(ask_at, at + timedelta(minutes=5)), "ask", spec)
            else:
                push(max(sign_at, at + timedelta(minutes=30)), "sign", spec)
        elif ev.step == "ask":
            case = spec["case"]
            request_information(db, case, items=["records"], detail="Please send the latest imaging report.",
                                by=case.reviewer, now=at, **ctx)
            spec["asked_at"] = at
            push(at + timedelta(days=spec["hold_days"]), "answer", spec)
        elif ev.step == "answer":
            case = spec["case"]
            answer_information_request(db, storage, case, answer="Report attached to the record; see history.",
                                       policy=policy, by=spec["referrer"], now=at, **ctx)
            # The clock stood still while waiting: the reviewer still needs the rest of the planned business time.
            used = business_seconds_between(spec["submitted"], spec["asked_at"], holidays)
            left = max(3600, int(spec["turnaround"] * DAY) - used)
            push(add_business_seconds(at, left, holidays), "sign", spec)
        elif ev.step == "sign":
            case = spec["case"]
            reviewer = case.reviewer
            opinion = save_draft(db, case, _draft(spec), based_on_version=None, by=reviewer,
                                 now=at - timedelta(minutes=20), **ctx)
            _sign_archived(db, case, opinion, by=reviewer, now=at)
            _placeholder_letter(db, case, opinion, blob_key=blob_key, sha256=sha256, by=reviewer, now=at)
            push(at + timedelta(hours=rng.randint(2, 60)), "acknowledge", spec)
        elif ev.step == "acknowledge":
            if at < now:
                acknowledge_letter(db, spec["case"], by=spec["referrer"], now=at, **ctx)
                push(at + timedelta(hours=rng.randint(1, 48)), "close", spec)
        elif ev.step == "close":
            if at < now:
                close_case(db, spec["case"], by=spec["referrer"], now=at, **ctx)
    # The history's notifications were read long ago.
    db.execute(update(Notification).where(Notification.case_id.in_(case_ids), Notification.read_at.is_(None))
               .values(read_at=now))
    # `flask outcomes-due` as a weekly cron would have run it; referrers answer within a few weeks, or not at all.
    days = int(app.config["OUTCOME_FOLLOW_UP_DAYS"])
    follow_ups = []
    for weeks_back in range(30, -1, -1):
        follow_ups += request_due_outcomes(db, days=days, now=now - timedelta(weeks=weeks_back), ip="127.0.0.1")
    answered = 0
    for follow_up in follow_ups:
        answer_at = follow_up.requested_at + timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 8))
        if rng.random() < 0.25 or answer_at >= now:
            continue
        followed = rng.choices(["fully", "partly", "not"], weights=[65, 25, 10])[0]
        confirmed = rng.choices(["second_opinion", "original", "neither", "unknown"], weights=[72, 10, 6, 12])[0]
        by_what = rng.choices(["pathology", "follow_up", "other"], weights=[55, 40, 5])[0]
        record_outcome(db, follow_up, OutcomeAnswer(
            recommendation_followed=followed, final_diagnosis="As in the second opinion." if confirmed == "second_opinion"
            else "Established at follow-up.", confirmed_opinion=confirmed, confirmed_by=by_what,
            confirmed_by_note="Multidisciplinary review" if by_what == "other" else ""),
            by=follow_up.case.referring, ip="127.0.0.1", now=answer_at)
        answered += 1
    db.execute(update(Notification).where(Notification.kind == "outcome_request", Notification.read_at.is_(None),
                                          Notification.case_id.in_([f.case_id for f in follow_ups if f.is_answered]))
               .values(read_at=now))
    return {"cases": len(case_ids), "outcomes_asked": len(follow_ups), "outcomes_answered": answered}
