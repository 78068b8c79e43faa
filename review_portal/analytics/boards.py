"""Figures of the multidisciplinary opinions: concordance by discipline, and how often the disciplines
disagreed (a dissent from the consensus, or sections of differing concordance on one case)."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.analytics.stats import share, wilson_interval
from review_portal.cases.models import Discipline
from review_portal.opinions.section_lifecycle import SectionStatus
from review_portal.opinions.section_models import (
    ConsensusPosition,
    OpinionSection,
    is_concordant,
)


def board_facts(db: Session, case_ids: list[int]) -> dict[int, dict]:
    """Per completed case with sections: [(discipline, concordant or None)] and whether anyone dissented."""
    if not case_ids:
        return {}
    facts: dict[int, dict] = defaultdict(lambda: {"sections": [], "dissent": False})
    for case_id, discipline, kind, content in db.execute(
            select(OpinionSection.case_id, OpinionSection.discipline, OpinionSection.kind, OpinionSection.content)
            .where(OpinionSection.case_id.in_(case_ids),
                   OpinionSection.status.in_([SectionStatus.SIGNED.value, SectionStatus.RECORDED.value]))):
        facts[case_id]["sections"].append((discipline or kind, is_concordant(kind, content or {})))
    for (case_id,) in db.execute(select(ConsensusPosition.case_id).where(ConsensusPosition.case_id.in_(case_ids),
                                                                         ConsensusPosition.position == "dissent")):
        facts[case_id]["dissent"] = True
    return dict(facts)


def board_figures(db: Session, case_ids: list[int]):
    from review_portal.analytics.services import Column, Figure

    facts = board_facts(db, case_ids)
    labels = dict(db.execute(select(Discipline.key, Discipline.label)).all())
    by_discipline: dict[str, list[bool]] = defaultdict(list)
    for case in facts.values():
        for discipline, concordant in case["sections"]:
            if concordant is not None:
                by_discipline[discipline].append(concordant)
    concordance = Figure(key="discipline_concordance", title="Concordance by discipline (multidisciplinary sections)",
                         columns=[Column("Discipline"), Column("Sections", "int"), Column("Concordant", "int"),
                                  Column("Share concordant", "pct"), Column("95% CI", "ci")],
                         note="Each signed section's own answer: RADPEER 1 for radiology; concordant histology and "
                              "biomarkers for pathology; agreement with the plan for the oncology disciplines.")
    for discipline in sorted(by_discipline, key=lambda d: labels.get(d, d)):
        values = by_discipline[discipline]
        k, n = sum(values), len(values)
        concordance.rows.append([labels.get(discipline, discipline.replace("_", " ").capitalize()), n, k, share(k, n),
                                 wilson_interval(k, n)])
    multi = [c for c in facts.values() if c["sections"]]
    n = len(multi)
    dissent = sum(1 for c in multi if c["dissent"])
    differing = sum(1 for c in multi if len({v for _, v in c["sections"] if v is not None}) > 1)
    disagreed = Figure(key="discipline_disagreement", title="How often the disciplines disagreed",
                       columns=[Column("Measure"), Column("Cases", "int"), Column("Share", "pct"), Column("95% CI", "ci")],
                       note="Completed multidisciplinary cases: at least one contributor dissented from the consensus, "
                            "or the sections differed in concordance (one concordant, another not).")
    disagreed.rows = [["Multidisciplinary cases", n, share(n, n), None],
                      ["At least one dissent", dissent, share(dissent, n), wilson_interval(dissent, n)],
                      ["Sections of differing concordance", differing, share(differing, n), wilson_interval(differing, n)]]
    return [concordance, disagreed]
