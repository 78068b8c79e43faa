"""Hand-written oracles for the portal's state machines, independent of the tables they check.

Each machine lists, as plain strings written out from the domain (never computed from a TRANSITIONS
dict), every move it allows and a selection of moves it must refuse. tests/unit/test_state_tables.py
checks each table against these; adding a move to a table without adding it here fails that test.
"""

CASE_STATES = ("submitted", "triage", "assigned", "in_review", "awaiting_information", "opinion_signed",
               "letter_delivered", "acknowledged", "closed", "withdrawn", "cancelled")
CASE_ALLOWED = {
    # Routing: offered to a reviewer, or nobody eligible (triage).
    ("submitted", "triage"), ("submitted", "assigned"),
    ("triage", "assigned"),
    # Accepted; offered to the next reviewer after a decline or a reassignment; declined with nobody left.
    ("assigned", "assigned"), ("assigned", "triage"), ("assigned", "in_review"),
    # Reassigned by a coordinator; information requested; opinion signed.
    ("in_review", "assigned"), ("in_review", "awaiting_information"), ("in_review", "opinion_signed"),
    # The referrer answers.
    ("awaiting_information", "in_review"),
    ("opinion_signed", "letter_delivered"),
    # An addendum re-issues the letter; the referrer acknowledges it; the case is closed.
    ("letter_delivered", "letter_delivered"), ("letter_delivered", "acknowledged"), ("letter_delivered", "closed"),
    ("acknowledged", "letter_delivered"), ("acknowledged", "closed"),
    # Withdrawn by the referrer or cancelled by a coordinator, from every open state.
    ("submitted", "withdrawn"), ("submitted", "cancelled"),
    ("triage", "withdrawn"), ("triage", "cancelled"),
    ("assigned", "withdrawn"), ("assigned", "cancelled"),
    ("in_review", "withdrawn"), ("in_review", "cancelled"),
    ("awaiting_information", "withdrawn"), ("awaiting_information", "cancelled"),
}
CASE_FORBIDDEN = [
    ("submitted", "in_review"),  # nobody accepted it
    ("submitted", "opinion_signed"),
    ("submitted", "submitted"),
    ("triage", "in_review"),
    ("triage", "triage"),
    ("assigned", "awaiting_information"),  # only the accepted reviewer asks
    ("assigned", "opinion_signed"),  # signing needs an accepted review
    ("in_review", "submitted"),
    ("in_review", "triage"),
    ("in_review", "in_review"),
    ("in_review", "letter_delivered"),  # the letter follows a signed opinion
    ("awaiting_information", "assigned"),  # reassign once it resumes
    ("awaiting_information", "opinion_signed"),
    ("opinion_signed", "withdrawn"),  # too late: the opinion is signed
    ("opinion_signed", "cancelled"),
    ("opinion_signed", "in_review"),
    ("opinion_signed", "closed"),
    ("letter_delivered", "withdrawn"),
    ("letter_delivered", "opinion_signed"),
    ("acknowledged", "acknowledged"),
    ("acknowledged", "cancelled"),
    ("closed", "letter_delivered"),
    ("closed", "in_review"),
    ("closed", "closed"),
    ("withdrawn", "submitted"),
    ("withdrawn", "cancelled"),
    ("cancelled", "assigned"),
    ("cancelled", "withdrawn"),
]

REVIEW_STATES = ("triage", "offered", "in_review", "completed", "cancelled")
REVIEW_ALLOWED = {
    ("triage", "triage"),  # created in triage, routing finds nobody
    ("triage", "offered"),
    ("triage", "cancelled"),
    ("offered", "offered"),  # declined, offered to the next reviewer; or reassigned
    ("offered", "triage"),  # declined, nobody else eligible
    ("offered", "in_review"),  # accepted
    ("offered", "cancelled"),
    ("in_review", "offered"),  # a coordinator hands it to somebody else
    ("in_review", "completed"),
    ("in_review", "cancelled"),
}
REVIEW_FORBIDDEN = [
    ("triage", "in_review"),  # nobody was offered it
    ("triage", "completed"),
    ("offered", "completed"),  # nobody accepted it
    ("in_review", "triage"),
    ("in_review", "in_review"),
    ("completed", "in_review"),
    ("completed", "cancelled"),
    ("completed", "offered"),
    ("cancelled", "triage"),
    ("cancelled", "offered"),
]

ASSIGNMENT_STATES = ("offered", "accepted", "declined", "completed", "ended")
ASSIGNMENT_ALLOWED = {
    ("offered", "accepted"),
    ("offered", "declined"),
    ("offered", "ended"),  # reassigned elsewhere, or the case ended
    ("accepted", "completed"),
    ("accepted", "ended"),
}
ASSIGNMENT_FORBIDDEN = [
    ("offered", "offered"),
    ("offered", "completed"),  # never accepted
    ("accepted", "declined"),  # too late to decline
    ("accepted", "offered"),
    ("accepted", "accepted"),
    ("declined", "accepted"),
    ("declined", "offered"),
    ("ended", "accepted"),
    ("ended", "offered"),
    ("completed", "ended"),
]

OPINION_STATES = ("draft", "signed")
OPINION_ALLOWED = {("draft", "signed")}
OPINION_FORBIDDEN = [("signed", "draft"), ("signed", "signed"), ("draft", "draft")]

# A section of a multidisciplinary opinion: signed by its author or waived by a coordinator; "recorded" (free-text
# findings from before sections) is created as such and, like signed and waived, never moves again.
SECTION_STATES = ("draft", "signed", "waived", "recorded")
SECTION_ALLOWED = {("draft", "signed"), ("draft", "waived")}
SECTION_FORBIDDEN = [("signed", "draft"), ("signed", "waived"), ("waived", "signed"), ("waived", "draft"),
                     ("recorded", "signed"), ("draft", "recorded"), ("draft", "draft")]

REQUEST_STATES = ("open", "answered", "cancelled")
REQUEST_ALLOWED = {("open", "answered"), ("open", "cancelled")}
REQUEST_FORBIDDEN = [("open", "open"), ("answered", "open"), ("answered", "answered"), ("answered", "cancelled"),
                     ("cancelled", "open"), ("cancelled", "answered")]

JOB_STATES = ("queued", "running", "done", "failed")
JOB_ALLOWED = {
    ("queued", "running"),  # a worker picks it up
    ("queued", "done"),  # run inline
    ("queued", "failed"),  # run inline, every attempt failed
    ("running", "running"),  # a second delivery of the same id
    ("running", "done"),
    ("running", "failed"),
    ("running", "queued"),  # retry, or requeued after the worker died
}
JOB_FORBIDDEN = [("queued", "queued"), ("done", "queued"), ("done", "running"), ("done", "failed"),
                 ("failed", "queued"), ("failed", "running"), ("failed", "done")]

INGEST_STATES = ("queued", "running", "done", "failed")
INGEST_ALLOWED = {
    ("queued", "running"),
    ("running", "running"),  # resumed after an interruption
    ("running", "done"),
    ("running", "failed"),
}
INGEST_FORBIDDEN = [("queued", "done"), ("queued", "failed"), ("queued", "queued"), ("running", "queued"),
                    ("done", "running"), ("done", "queued"), ("failed", "running"), ("failed", "done")]
