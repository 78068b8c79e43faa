"""Header extraction: the viewer's tag panel (header_elements) and DICOM JSON for DICOMweb (dicom_json)."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import RawDataElement

from review_portal.imaging.reading import _DEFER_SIZE, _damaged_file_guard

__all__ = ["dicom_json", "header_elements"]

_HEADER_VALUE_CHARS = 120


def header_elements(path: Path) -> list[dict[str, str]]:
    """Top-level header elements (no pixel data) for the viewer's tag panel, as plain strings."""
    with _damaged_file_guard():
        ds = dcmread(Path(path), stop_before_pixels=True, defer_size=_DEFER_SIZE)
        rows: list[dict[str, str]] = []
        for dataset in (getattr(ds, "file_meta", None), ds):
            if dataset is None:
                continue
            for tag in list(dataset.keys()):
                elem = dataset.get_item(tag, keep_deferred=True)
                if isinstance(elem, RawDataElement) and elem.value is None:
                    value = f"({elem.length} bytes, not shown)"
                    name, vr = _tag_name(tag), str(elem.VR or "")
                else:
                    full = dataset[tag]
                    name, vr = full.name, str(full.VR)
                    if vr == "SQ":
                        value = f"({len(full.value)} item(s))"
                    elif vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                        value = f"({len(full.value or b'')} bytes)"
                    else:
                        value = str(full.value)
                if len(value) > _HEADER_VALUE_CHARS:
                    value = value[: _HEADER_VALUE_CHARS - 1] + "…"
                rows.append({"tag": f"({tag.group:04X},{tag.element:04X})", "name": name, "vr": vr, "value": value})
        return rows


def _tag_name(tag) -> str:
    from pydicom.datadict import dictionary_description

    try:
        return dictionary_description(tag)
    except KeyError:
        return "Private tag"


def dicom_json(path: Path, bulk_uri=None) -> dict:
    """The instance's header as DICOM JSON (PS3.18 F.2), pixel data and large binaries as BulkDataURIs.

    ``bulk_uri(tag_string) -> str`` names where a client may fetch a binary value; without it
    large binaries are left out.
    """
    with _damaged_file_guard():
        ds = dcmread(Path(path), stop_before_pixels=True)

        def handler(elem) -> str:
            return bulk_uri(f"{elem.tag.group:04X}{elem.tag.element:04X}") if bulk_uri else ""

        out = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=handler, suppress_invalid_tags=True)
        if bulk_uri is None:
            out = {k: v for k, v in out.items() if "BulkDataURI" not in v or v["BulkDataURI"]}
        return out
