"""Audit events in plain words: "Dr Stone viewed the images of SO-2026-00061".

The one mapping from an event's action to a sentence, for the coordinator's activity search and the case page's
activity panel. The administrator's audit log keeps the raw actions. Core only: who did it is passed in by name.
"""
from __future__ import annotations

# Each phrase follows the person's name; {case} is the case's reference (or "this case" on its own page).
PHRASES = {
    # seeing a case and its parts
    "case.viewed": "opened {case}",
    "case.listed": "saw {case} in a list of cases",
    "images.viewed": "viewed the images of {case}",
    "series.viewed": "opened a series of {case} in the image viewer",
    "dicom_header.viewed": "read an image header of {case}",
    "document.downloaded": "downloaded a report of {case}",
    "opinion.viewed": "read the opinion on {case}",
    "letters.viewed": "looked at the letters of {case}",
    "letter.downloaded": "downloaded the letter of {case}",
    "letter.previewed": "previewed the draft letter of {case}",
    "outcome.viewed": "looked at the outcome report of {case}",
    "activity.viewed": "looked at the activity of {case}",
    # the referral and its course
    "case.submitted": "submitted the referral {case}",
    "case.status_changed": "moved {case} to its next step",
    "case.assigned": "assigned a reviewer to {case}",
    "case.routing_failed": "sent {case} to the triage queue (no reviewer found)",
    "case.withdrawn": "withdrew {case}",
    "case.cancelled": "cancelled {case}",
    "case.letter_released": "released the letter of {case} without the open reviews",
    "case.purged": "removed {case} under the retention rules",
    "case.fhir_exported": "exported {case} as FHIR",
    "case.deidentified_export": "made a de-identified export of {case}",
    "scans.uploaded": "uploaded scans to {case}",
    "scans.ingested": "added the uploaded scans to {case}",
    "key_image.marked": "marked a key image of {case}",
    "key_image.unmarked": "removed a key image of {case}",
    "identity.mismatch_flagged": "found a study in {case} whose header names another patient",
    "identity.confirmed": "confirmed a study of {case} is the referral's patient",
    "identity.wrong_study": "marked a study of {case} as another patient's",
    "privacy.incident": "removed another patient's study from {case} (privacy incident)",
    "identity.incident_viewed": "looked at who saw a removed study of {case}",
    "measurements.viewed": "looked at the measurements on the images of {case}",
    "measurement.created": "measured an image of {case}",
    "measurement.changed": "changed a measurement on an image of {case}",
    "measurement.removed": "removed a measurement from an image of {case}",
    "measurements.frozen": "signed the measurements on the images of {case}",
    # reviews and offers
    "review.added": "added a review to {case}",
    "review.completed": "completed a review of {case}",
    "section.draft_saved": "saved a draft section of {case}",
    "section.signed": "signed a section of {case}",
    "section.waived": "waived a section of {case}",
    "section.sign_refused": "was refused signing a section of {case} (wrong password)",
    "section addendum.sign_refused": "was refused signing a section addendum of {case} (wrong password)",
    "section.addendum_signed": "signed a section addendum of {case}",
    "case.chair_named": "named the chair of {case}",
    "consensus.position_recorded": "recorded a contributor's position on the consensus of {case}",
    "board.viewed": "saw {case} on the tumor-board agenda",
    "review.near_due": "noted that the review of {case} is nearly due",
    "review.escalated": "escalated the overdue review of {case}",
    "review.deadline_extended": "extended the deadline of {case}",
    "assignment.accepted": "accepted the review of {case}",
    "assignment.declined": "declined the review of {case}",
    "assignment.override": "chose the reviewer of {case} by hand",
    "assignment.offer_reminded": "reminded the reviewer of the offer of {case}",
    "assignment.offer_escalated": "escalated the unanswered offer of {case}",
    # the conversation
    "message.posted": "wrote a message on {case}",
    "information.requested": "asked for more information on {case}",
    "information.answered": "answered the request for information on {case}",
    "follow_up.asked": "asked a follow-up question on {case}",
    "follow_up.answered": "answered a follow-up question on {case}",
    # the opinion and the letter
    "opinion.draft_saved": "saved a draft of the opinion on {case}",
    "opinion.signed": "signed the opinion on {case}",
    "opinion.sign_refused": "was refused signing the opinion on {case} (wrong password)",
    "opinion.addendum_signed": "signed an addendum to the opinion on {case}",
    "addendum.sign_refused": "was refused signing an addendum on {case} (wrong password)",
    "letter.issued": "issued the letter of {case}",
    "letter.acknowledged": "acknowledged receipt of the letter of {case}",
    "letter.resent": "sent the letter of {case} again",
    "letter.fhir_exported": "exported the letter of {case} as FHIR",
    "outcome.requested": "asked for the outcome of {case}",
    "outcome.amended": "updated the outcome report of {case}",
    # programs and special access
    "dicomweb.searched": "searched the images of {case} through DICOMweb",
    "dicomweb.metadata": "read image headers of {case} through DICOMweb",
    "dicomweb.retrieved": "retrieved the images of {case} through DICOMweb",
    "dicomweb.rendered": "viewed rendered images of {case} through DICOMweb",
    "emergency_access.granted": "used emergency access to open {case}",
    "access.denied": "was refused access to {case}",
}

OUTCOME_NOTES = {"denied": " (refused)", "failed": " (failed)"}
NOBODY = "The system"


def phrase(action: str, case: str = "the case") -> str:
    """What was done, without the person: "viewed the images of SO-2026-00061"."""
    known = PHRASES.get(action)
    if known is not None:
        return known.format(case=case)
    words = action.replace("_", " ").replace(".", " ").strip() or "an action"
    return f"recorded “{words}” on {case}"


def sentence(action: str, *, who: str = "", case: str = "", outcome: str = "success") -> str:
    """One plain sentence: "Dr Stone viewed the images of SO-2026-00061." """
    text = f"{who or NOBODY} {phrase(action, case or 'the case')}"
    if outcome in OUTCOME_NOTES and "refused" not in text:
        text += OUTCOME_NOTES[outcome]
    return text + "."
