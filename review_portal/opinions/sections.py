"""The multidisciplinary opinion: each contributor's section (draft, autosave, sign, waive, addenda), the chair,
and each contributor's position on the consensus.

Services flush, never commit, and write their audit rows in the caller's transaction. Signed sections are
never edited: later changes are section addenda (and, after the consensus, a consensus addendum and a new
letter version: workflow.boards).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from review_portal.assignment.routing import conflict_of_interest
from review_portal.audit.services import record
from review_portal.auth.models import Role
from review_portal.cases.lifecycle import CaseStatus
from review_portal.cases.models import Discipline
from review_portal.cases.permissions import can_view_case, has_accepted_review
from review_portal.errors import (
    ConcurrentEdit,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from review_portal.opinions import measurements
from review_portal.opinions.models import RADPEER_COMMENT_REQUIRED
from review_portal.opinions.permissions import can_write_consensus
from review_portal.opinions.section_lifecycle import SectionStatus, transition_section
from review_portal.opinions.section_models import (
    DISSENT_SOURCES,
    LEGACY_FIELD,
    POSITIONS,
    SECTION_CHOICES,
    SECTION_FIELDS,
    SECTION_REQUIRED,
    BoardChair,
    ConsensusPosition,
    OpinionSection,
    SectionAddendum,
    kind_of_specialty,
)
from review_portal.opinions.services import (
    MAX_ADDENDUM,
    MAX_TEXT,
    chair_of,
    check_signature,
    opinion_for_case,
)

# Sections are written while the case is open; the lead may not have accepted yet when a contributor starts.
SECTION_CASE_STATUSES = frozenset({CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION})
REVIEW_TYPE_KIND = {"radiology_read": "radiology", "pathology_review": "pathology"}


def sections_of_case(db: Session, case_id: int) -> list[OpinionSection]:
    return list(db.scalars(select(OpinionSection).where(OpinionSection.case_id == case_id).order_by(OpinionSection.id)))


def positions_of_case(db: Session, case_id: int) -> list[ConsensusPosition]:
    return list(db.scalars(select(ConsensusPosition).where(ConsensusPosition.case_id == case_id)
                           .order_by(ConsensusPosition.id)))


def section_of_review(db: Session, review_id: int) -> OpinionSection | None:
    return db.scalar(select(OpinionSection).where(OpinionSection.review_id == review_id))


def kind_of_review(db: Session, review) -> str:
    if review.discipline:
        specialty = db.scalar(select(Discipline.specialty).where(Discipline.key == review.discipline))
        if specialty:
            return kind_of_specialty(specialty)
    return REVIEW_TYPE_KIND.get(review.review_type, "oncology")


def review_in_case(case, review_id) -> object:
    review = next((r for r in case.reviews if r.id == review_id), None)
    if review is None:
        raise NotFound("No such review on this case.")
    return review


def is_section_author(user, review) -> bool:
    """The reviewer who accepted this review (and still holds it) writes its section."""
    assignment = review.active_assignment
    return (user.role == Role.REVIEWER and assignment is not None and assignment.reviewer_id == user.id
            and assignment.is_taken)


def _check_author(case, review, by) -> None:
    if not is_section_author(by, review):
        raise PermissionDenied("Only the reviewer who accepted this review writes its section.")
    if case.status not in SECTION_CASE_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; its sections can no longer "
                                "be written.")


def clean_content(kind: str, data: dict) -> dict:
    """The known fields of this kind, as stripped text, coded ones checked against their vocabularies."""
    fields = SECTION_FIELDS[kind]
    unknown = sorted(set(data) - set(fields))
    problems = [f"unknown field {name[:30]!r}" for name in unknown]
    cleaned = {}
    for name in fields:
        value = data.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append(f"{name.replace('_', ' ')} must be text")
            continue
        value = value.strip()
        if name in SECTION_CHOICES and value and value not in SECTION_CHOICES[name]:
            problems.append(f"unknown {name.replace('_', ' ')} {value[:20]!r}")
        elif len(value) > MAX_TEXT:
            problems.append(f"{name.replace('_', ' ')} is longer than {MAX_TEXT} characters")
        cleaned[name] = value
    if problems:
        raise InvalidInput("The section was not saved: " + "; ".join(problems) + ".")
    return cleaned


def save_section(db: Session, case, review, data: dict, *, based_on_version: int | None, by, ip: str,
                 now: datetime) -> OpinionSection:
    """Create or update the draft of `review`'s section; a save based on an older version is refused
    (ConcurrentEdit), exactly as the opinion draft's autosave."""
    _check_author(case, review, by)
    section = section_of_review(db, review.id)
    kind = section.kind if section is not None else kind_of_review(db, review)
    content = clean_content(kind, data)
    if section is None:
        if based_on_version not in (None, 0):
            raise ConcurrentEdit("This section no longer exists. Reload the page; your text below was not saved.")
        section = OpinionSection(case_id=case.id, review_id=review.id, discipline=review.discipline, kind=kind,
                                 author_id=by.id, status=SectionStatus.DRAFT.value, content=content, created_at=now,
                                 updated_at=now)
        db.add(section)
    else:
        if section.status != SectionStatus.DRAFT:
            raise IllegalTransition(f"This section is {section.status_label.lower()}; it can no longer be edited."
                                    + (" Add a section addendum instead." if section.is_signed else ""))
        if based_on_version is not None and section.version != based_on_version:
            raise ConcurrentEdit("This section was changed elsewhere (another tab or window) since you opened it. "
                                 "Reload the page to see the latest version; your text below was not saved.")
        section.content = content
        section.author_id = by.id
        section.updated_at = now
    try:
        db.flush()
    except IntegrityError:
        raise ConcurrentEdit("This section was started in another tab or window at the same moment. "
                             "Reload the page; your text below was not saved.") from None
    record(db, action="section.draft_saved", by=by, ip=ip, now=now, case=case, object_type="section",
           object_id=section.id, detail=f"version={section.version}; discipline={section.discipline or kind}")
    return section


def missing_for_section(section: OpinionSection) -> list[str]:
    content = section.content or {}
    missing = [label for name, label in SECTION_REQUIRED[section.kind].items() if not content.get(name)]
    if section.kind == "radiology" and content.get("radpeer_score") in RADPEER_COMMENT_REQUIRED \
            and not content.get("radpeer_comment"):
        missing.append(f"a comment on the discrepancy (RADPEER {content['radpeer_score']} needs one)")
    return missing


def section_hash(section: OpinionSection, case, signed_measurements: list[dict] | None = None) -> str:
    content = {"case": case.reference, "review_id": section.review_id, "discipline": section.discipline,
               "kind": section.kind, "author_id": section.author_id, "signed_at": section.signed_at.isoformat(),
               "content": {k: (section.content or {}).get(k, "") for k in SECTION_FIELDS[section.kind]}}
    if signed_measurements:  # only when there are any, so hashes of sections without measurements stay as they were
        content["measurements"] = signed_measurements
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def sign_section(db: Session, case, review, *, password: str, attested: bool, by, ip: str, now: datetime,
                 based_on_version: int | None = None, storage=None) -> OpinionSection:
    """The author signs the section with their password; a contributing review is then complete."""
    section = section_of_review(db, review.id)
    if section is not None and section.is_signed:
        raise IllegalTransition("This section is already signed. Add a section addendum instead.")
    _check_author(case, review, by)
    if section is None:
        raise InvalidInput("Save a draft of the section before signing it.")
    if section.status != SectionStatus.DRAFT:
        raise IllegalTransition(f"This section is {section.status_label.lower()}; it cannot be signed.")
    if based_on_version is not None and based_on_version != section.version:
        raise ConcurrentEdit("The section was changed in another tab or window since this page showed it. "
                             "Reload the page, read the latest text, then sign.")
    check_signature(db, case, password=password, attested=attested, by=by, ip=ip, now=now, what="section")
    missing = missing_for_section(section)
    if missing:
        raise InvalidInput("Complete these before signing: " + ", ".join(missing) + ".")
    if storage is not None:  # the section's measurements recomputed from the original pixels, then signed with it
        measurements.freeze_measurements(db, storage, case, review.id, now=now)
    section.author_id = by.id
    section.signed_at = now
    section.content_sha256 = section_hash(section, case, measurements.signed_measurements(
        measurements.measurements_of_case(db, case.id, review.id)))
    transition_section(section, SectionStatus.SIGNED, now, by=by, ip=ip, case=case,
                       detail=f"sha256={section.content_sha256}")
    if not review.is_lead and review.is_open:
        review.complete(now, by=by, ip=ip, audit=True)  # review.completed
    db.flush()
    return section


def waive_section(db: Session, case, review, *, reason: str, by, ip: str, now: datetime) -> OpinionSection:
    """A coordinator lets the consensus go without this section, with a reason; its open review ends."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can waive a section.")
    if case.status not in SECTION_CASE_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; its sections are settled.")
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput("Say why the consensus may go without this section.")
    if len(reason) > 500:
        raise InvalidInput("Keep the reason under 500 characters.")
    section = section_of_review(db, review.id)
    if section is None:
        section = OpinionSection(case_id=case.id, review_id=review.id, discipline=review.discipline,
                                 kind=kind_of_review(db, review), author_id=review.reviewer.id if review.reviewer else None,
                                 status=SectionStatus.WAIVED.value, content={}, created_at=now, updated_at=now,
                                 waived_by_id=by.id, waived_at=now, waiver_reason=reason)
        db.add(section)
        db.flush()
        record(db, action="section.waived", by=by, ip=ip, now=now, case=case, object_type="section",
               object_id=section.id, detail=f"not started; {reason}")
    else:
        section.waived_by_id, section.waived_at, section.waiver_reason = by.id, now, reason
        transition_section(section, SectionStatus.WAIVED, now, by=by, ip=ip, case=case, detail=reason)
    if not review.is_lead and review.is_open:
        review.cancel(now)  # part of the waiver, audited above
    db.flush()
    return section


def record_free_text_section(db: Session, review, findings: str, *, by, now: datetime) -> OpinionSection:
    """The old "complete review" form: the findings become the review's section, recorded but not signed."""
    section = section_of_review(db, review.id)
    if section is not None:
        raise IllegalTransition("This review already has a section: sign it instead.")
    kind = kind_of_review(db, review)
    section = OpinionSection(case_id=review.case_id, review_id=review.id, discipline=review.discipline, kind=kind,
                             author_id=by.id, status=SectionStatus.RECORDED.value,
                             content={LEGACY_FIELD[kind]: findings.strip()}, created_at=now, updated_at=now,
                             from_free_text=True)
    db.add(section)
    db.flush()
    return section


def add_section_addendum(db: Session, case, section: OpinionSection, text: str, *, reason: str = "",
                         password: str, attested: bool, by, ip: str, now: datetime) -> SectionAddendum:
    """The section's author amends their signed section (password asked again). Signed after the consensus,
    it calls for a consensus addendum (workflow.boards re-issues the letter)."""
    if not section.is_signed:
        raise IllegalTransition("An addendum can only follow a signed section; edit the draft instead.")
    if section.author_id != by.id:
        raise PermissionDenied("Only the reviewer who signed the section can add an addendum to it.")
    text, reason = (text or "").strip(), " ".join((reason or "").split())
    if not text:
        raise InvalidInput("Write the text of the addendum.")
    if len(text) > MAX_ADDENDUM or len(reason) > 300:
        raise InvalidInput(f"The addendum is at most {MAX_ADDENDUM} characters, its reason at most 300.")
    check_signature(db, case, password=password, attested=attested, by=by, ip=ip, now=now, what="section addendum")
    number = (db.scalar(select(func.max(SectionAddendum.number)).where(SectionAddendum.section_id == section.id)) or 0) + 1
    opinion = opinion_for_case(db, case.id)
    content = {"section_sha256": section.content_sha256, "number": number, "reason": reason, "text": text,
               "signed_by_id": by.id, "signed_at": now.isoformat()}
    addendum = SectionAddendum(section_id=section.id, case_id=case.id, number=number, reason=reason, text=text,
                               signed_by_id=by.id, signed_at=now,
                               content_sha256=hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest(),
                               after_consensus=opinion is not None and opinion.is_signed)
    db.add(addendum)
    db.flush()
    db.expire(section, ["addenda"])
    record(db, action="section.addendum_signed", by=by, ip=ip, now=now, case=case, object_type="section_addendum",
           object_id=addendum.id, detail=f"section={section.id}; number={number}; sha256={addendum.content_sha256}")
    return addendum


def open_section_addenda(db: Session, case_id: int) -> list[SectionAddendum]:
    """Section addenda signed after the consensus that no consensus addendum has answered yet."""
    return list(db.scalars(select(SectionAddendum).where(SectionAddendum.case_id == case_id,
                                                         SectionAddendum.after_consensus.is_(True),
                                                         SectionAddendum.consensus_answered_at.is_(None))
                           .order_by(SectionAddendum.id)))


# --- the chair and the contributors' positions ------------------------------------------------------------

def name_chair(db: Session, case, chair, *, reason: str, by, ip: str, now: datetime) -> BoardChair:
    """A coordinator names the chair who writes the consensus; the same checks as any reviewer of the case."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can name the chair.")
    if case.status not in SECTION_CASE_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; its chair can no longer change.")
    conflict = conflict_of_interest(chair, case)
    if conflict:
        raise InvalidInput(f"{chair.name} cannot chair case {case.reference}: {conflict}.")
    if not can_view_case(chair, case) or not has_accepted_review(chair, case):
        raise InvalidInput(f"{chair.name} cannot chair case {case.reference}: the chair must have accepted one of "
                           "its reviews.")
    opinion = opinion_for_case(db, case.id)
    if opinion is not None and opinion.is_signed:
        raise IllegalTransition("The consensus is signed; the chair can no longer change.")
    current = chair_of(db, case.id)
    reason = " ".join((reason or "").split())[:500]
    if current is None:
        current = BoardChair(case_id=case.id, chair_id=chair.id, named_by_id=by.id, named_at=now, reason=reason)
        db.add(current)
    else:
        current.chair_id, current.named_by_id, current.named_at, current.reason = chair.id, by.id, now, reason
    db.flush()
    record(db, action="case.chair_named", by=by, ip=ip, now=now, case=case, object_type="user", object_id=chair.id,
           detail=reason)
    return current


def record_position(db: Session, case, section: OpinionSection, *, position: str, dissent_text: str = "",
                    quote_section: bool = False, by, ip: str, now: datetime) -> ConsensusPosition:
    """The chair records whether a contributor agrees with the consensus or dissents (in their own words:
    typed by the chair as the contributor said it, or quoted from the section)."""
    opinion = opinion_for_case(db, case.id)
    if opinion is not None and opinion.is_signed:
        raise IllegalTransition("The consensus is signed; the positions on it can no longer change.")
    if not can_write_consensus(by, case, chair_of(db, case.id)):
        raise PermissionDenied("Only the lead reviewer or the chair records the contributors' positions.")
    if section.case_id != case.id or section.status not in (SectionStatus.SIGNED, SectionStatus.RECORDED):
        raise InvalidInput("A position is recorded for a signed section of this case.")
    if position not in POSITIONS:
        raise InvalidInput("Choose agree or dissent.")
    source, text = "", ""
    if position == "dissent":
        if quote_section:
            text, source = section_main_text(section), "section"
        else:
            text, source = (dissent_text or "").strip(), "lead"
        if not text:
            raise InvalidInput("A dissent keeps the contributor's own words: write them, or quote the section.")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"The dissent is longer than {MAX_TEXT} characters.")
    found = db.scalar(select(ConsensusPosition).where(ConsensusPosition.section_id == section.id))
    if found is None:
        found = ConsensusPosition(case_id=case.id, section_id=section.id, position=position, dissent_text=text,
                                  dissent_source=source, recorded_by_id=by.id, recorded_at=now)
        db.add(found)
    else:
        found.position, found.dissent_text, found.dissent_source = position, text, source
        found.recorded_by_id, found.recorded_at = by.id, now
    db.flush()
    record(db, action="consensus.position_recorded", by=by, ip=ip, now=now, case=case, object_type="section",
           object_id=section.id, detail=position + (f"; {DISSENT_SOURCES[source]}" if source else ""))
    return found


def section_main_text(section: OpinionSection) -> str:
    """The section's conclusion in its author's words: what a quoted dissent repeats."""
    content = section.content or {}
    names = {"radiology": ("impression", "findings"), "pathology": ("comment", "report_review"),
             "oncology": ("plan", "rationale")}[section.kind]
    return next((content[n] for n in names if content.get(n)), "")


# --- what the letter and the FHIR report carry ----------------------------------------------------------------

def _stamp(d) -> str:
    return f"{d.day} {d:%B %Y}, {d:%H:%M} UTC" if d else ""


def board_letter_values(db: Session, case) -> dict:
    """Plain values for the letter: every signed (or recorded) section with its author, discipline and signature
    time; waived sections with the reason; every dissent in its author's words; the section addenda."""
    from review_portal.opinions.section_models import SECTION_LABELS

    sections = sections_of_case(db, case.id)
    if not sections:
        return {"sections": [], "waived": [], "dissents": [], "agreements": []}
    positions = {p.section_id: p for p in positions_of_case(db, case.id)}
    labels = dict(db.execute(select(Discipline.key, Discipline.label)).all())
    shown, waived, dissents, agreements = [], [], [], []
    for s in sections:
        discipline = labels.get(s.discipline, (s.discipline or s.kind).replace("_", " ").capitalize())
        author = s.author.display_name if s.author else ""
        if s.status == SectionStatus.WAIVED:
            waived.append({"discipline": discipline, "reason": s.waiver_reason,
                           "waived_by": s.waived_by.display_name if s.waived_by else "", "waived_at": _stamp(s.waived_at)})
            continue
        if s.status not in (SectionStatus.SIGNED, SectionStatus.RECORDED):
            continue
        content = s.content or {}
        fields = []
        for name in SECTION_FIELDS[s.kind]:
            value = content.get(name) or ""
            if value:
                fields.append({"label": SECTION_LABELS[name],
                               "value": SECTION_CHOICES[name].get(value, value) if name in SECTION_CHOICES else value})
        shown.append({"discipline": discipline, "author": author, "signed": s.is_signed,
                      "signed_at": _stamp(s.signed_at),
                      "signed_at_iso": s.signed_at.isoformat().replace("+00:00", "Z") if s.signed_at else "",
                      "recorded_at": _stamp(s.updated_at), "sha256": s.content_sha256 or "",
                      "fields": fields, "measurements": measurements.lesion_rows(db, case, s.review_id),
                      "addenda": [{"number": a.number, "reason": a.reason, "text": a.text,
                                   "signed_by": a.signed_by.display_name if a.signed_by else "",
                                   "signed_at": _stamp(a.signed_at), "sha256": a.content_sha256} for a in s.addenda]})
        position = positions.get(s.id)
        if position is not None and position.is_dissent:
            dissents.append({"discipline": discipline, "author": author, "text": position.dissent_text,
                             "source": DISSENT_SOURCES.get(position.dissent_source, "")})
        elif position is not None:
            agreements.append({"discipline": discipline, "author": author})
    return {"sections": shown, "waived": waived, "dissents": dissents, "agreements": agreements}
